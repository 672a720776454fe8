// Training: datasets, augmentation, loss, optimiser, the training loop, evaluation runs, model promotion.
//
// Reading order:
//   TrainingSession      one retraining top to bottom: data → network → train (resuming) → validate → bundle → register
//   Trainer              the loop: sample, augment, step, accumulate, SGD, progress, checkpoint
//   TrainingRandom       the one seeded RNG every random choice draws from (saved with checkpoints)
//   LesionDataset        IDRiD / DDR / nnU-Net folders → samples with their annotated classes
//   DatasetSamples       decode, merge masks (MA > SE > HE > EX), field-of-view crop
//   Augmentation         the official train pipeline (scale jitter, crop, photometric distortion) + flips/rotations
//   (the loss, BinaryDiceLoss, is Network's: one bdice for the engine's parity and our trainer)
//   Optimiser            SGD momentum/weight decay with PyTorch semantics, poly schedule, gradient accumulation
//   TrainingCheckpoint   weights + momentum + iteration + RNG + sampler + configuration, written atomically
//   NetworkModel         the engine's M2MRF-HRNetV2 behind `TrainableModel`
//   Validation           official mAUPR/mIoU + exact AP on original pixels, one image at a time
//   Promotion, ModelRollout   promote only when better on the same images; rollback
