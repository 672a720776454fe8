// Network: layers and models — HRNetV2, the M2MRF operator (variants A–D), the FCN head — built from a
// `ModelArchitecture`, parameters addressed by their mmsegmentation names; inference (whole and tiled) and training.
