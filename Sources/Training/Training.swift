// Training: datasets, augmentation, loss, optimiser, the training loop, evaluation runs, model promotion.
//
// Reading order: TrainingRandom (the one RNG), Optimiser (SGD + poly), BinaryDiceLoss (bdice), TrainingCheckpoint
// (save/resume), LesionDataset (folders → samples), Augmentation (the official train pipeline), Trainer (the loop).
