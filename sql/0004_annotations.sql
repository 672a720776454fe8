-- Graders' lesion annotations of archive images, the material retraining learns from.
--
-- An image is annotated once it has a row in annotated_images: its split says whether training or validation uses
-- it. Each class the grader annotated has a row in annotation_masks: mask_path is a binary mask of the photograph's
-- size (non-zero = lesion), NULL when the grader looked and found no lesion of that class. A class without a row
-- was not annotated, and training leaves it out of that image's loss.

CREATE TABLE annotated_images (
    image_id      bigint PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
    split         text NOT NULL DEFAULT 'train' CHECK (split IN ('train', 'validation')),
    grader        text CHECK (grader <> ''),
    annotated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX annotated_images_split ON annotated_images (split);

CREATE TABLE annotation_masks (
    image_id      bigint NOT NULL REFERENCES annotated_images (image_id) ON DELETE CASCADE,
    lesion_class  text NOT NULL CHECK (lesion_class IN ('EX', 'HE', 'SE', 'MA')),
    mask_path     text CHECK (mask_path LIKE '/%'),
    PRIMARY KEY (image_id, lesion_class)
);
