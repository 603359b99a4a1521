import argparse
import sys

parser = argparse.ArgumentParser(prog="python -m server", description="posecast live server (not implemented yet)")
parser.parse_args()
print("python -m server: not implemented yet", file=sys.stderr)
sys.exit(2)
