import Foundation

/// The retinal vessels as an optional sixth output channel (issue #16, "Many Birds, One Stone"): learned from a
/// partially labelled set (HRF: vessels annotated, nothing else) so that the network meets vessels as a class of
/// their own — the structure haemorrhage and microaneurysm detectors confuse most. Not a lesion and not reported in
/// the findings; a model with this channel always has the optic disc before it.
public enum RetinalVessels {
    /// Mask folder of a vessel set (`masks/vessels/<image>.<ext>`) and the model card's class name.
    public static let folder = "vessels"
    public static let code = "VESSELS"
    public static let name = "retinal vessels"
    /// Output channel: after the four lesion classes and the optic disc.
    public static let channel = OpticDisc.channel + 1
    /// Value in the merged training label map, with the lowest precedence of all (the disc and every lesion
    /// overwrite it).
    public static let labelIndex = OpticDisc.labelIndex + 1
    /// A mask pixel is a vessel above this grey value: vessel masks are often re-saved as JPEG (HRF's shared copies
    /// are), whose ringing leaves faint non-zero values around every vessel.
    public static let maskThreshold: UInt8 = 127
}
