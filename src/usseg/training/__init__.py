"""The training engine: one loop for the network, semi-supervised and forest trainers.

- `usseg.train`: the entry point (`train_experiment`, `train_many`); picks the trainer.
- `code`: which modules an experiment's training runs (its trainer and remedy
  families), for lazy loading, the rules' code inputs and the training fingerprint.
- `job`: `TrainingJob` (one training, prepared), the fingerprint, class weights.
- `batches`: the training images as tensors, shuffled and augmented per batch.
- `loop`: the network trainer (epochs, validation, checkpoints, resume).
- `semi`: the pseudo_label and mean_teacher trainers, built on `loop`.
- `forest`: the random-forest trainer.
- `remedy`: an experiment's remedy in training and at prediction.
- `history`: history.csv, timing.csv and the epoch line; `curves`: curves.png.

Nothing is imported here: a job's code is the modules it really runs (usseg.code_deps).
"""
