from posecast.cli import entry

entry("python -m training", "Train and evaluate the 2D-to-3D lifter on motion capture.", {
    "prepare": ("training.prepare", "build the dataset cache from BVH motion capture and virtual cameras"),
    "prepare-temporal": ("training.prepare_temporal", "the sequence dataset (30 fps motion, validation tracks) for the temporal lifter"),
    "fit": ("training.fit", "train the lifter (resumable, with checkpoints and a learning curve)"),
    "fit-temporal": ("training.fit_temporal", "train the causal temporal lifter on sequence windows (resumable)"),
    "ablation-temporal": ("training.ablation_temporal", "short runs of temporal architectures beside the per-frame lifter"),
    "evaluate": ("training.evaluate", "MPJPE / P-MPJPE tables on validation and cross-dataset clips"),
    "legprior": ("training.legprior", "how well unseen legs can be guessed on the climbing set: legs borrowed from other clips"),
    "ablation": ("training.ablation", "short runs with each pose-space augmentation off: cross-dataset table"),
})
