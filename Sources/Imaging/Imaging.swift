// Imaging: image buffers, codecs (Swift side of CImageCodecs), resize, field-of-view detection and crop,
// normalisation, masks and overlays.
