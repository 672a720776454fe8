-- The optic disc found on a screened image by a model that has the disc channel (issue #16): where it is and how
-- large, in pixels of the photograph. One row per screening result of such a model; none for four-class models
-- or ungradable images. The disc is not a lesion: it never appears in findings or lesions.
CREATE TABLE optic_discs (
    result_id           bigint PRIMARY KEY REFERENCES screening_results (id) ON DELETE CASCADE,
    found               boolean NOT NULL,
    -- Centre (mean pixel position) and equivalent-circle diameter of the largest disc component.
    centre_x            double precision,
    centre_y            double precision,
    diameter_px         double precision CHECK (diameter_px > 0),
    area_px             bigint CHECK (area_px > 0),
    -- True when the image had no pixel spacing and the findings' area_mm2 are estimates from this disc's diameter
    -- taken as assumed_diameter_mm (1.8 mm), not measurements.
    area_mm2_from_disc  boolean NOT NULL DEFAULT false,
    assumed_diameter_mm double precision CHECK (assumed_diameter_mm > 0),
    CHECK (found = (centre_x IS NOT NULL) AND found = (centre_y IS NOT NULL)
           AND found = (diameter_px IS NOT NULL) AND found = (area_px IS NOT NULL)),
    CHECK (NOT area_mm2_from_disc OR (found AND assumed_diameter_mm IS NOT NULL))
);
