// Training: datasets, augmentation, loss, optimiser, the training loop, evaluation runs, model promotion.
