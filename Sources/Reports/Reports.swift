// Reports: per-patient HTML reports with overlay images, CSV/JSON exports.
