-- DICOM intake: one image per SOP Instance UID, and one key format for screening jobs.

-- The same DICOM instance imported twice (another copy, another path) is one image. Fails, naming the UID, on an
-- archive that already holds two rows with one instance UID: merge or clear them first.
CREATE UNIQUE INDEX images_instance_uid ON images (instance_uid) WHERE instance_uid IS NOT NULL;

-- The local form (`screen -i DIR -o DIR`) keyed its screening jobs `screen:<image>:<model>`; every screening job is
-- now keyed `<image>/<model>`, so an image is never queued twice for one model version whichever path queued it.
UPDATE jobs j SET unique_key = j.image_id::text || '/' || j.model_version_id::text
WHERE j.kind = 'screen' AND j.unique_key = 'screen:' || j.image_id::text || ':' || j.model_version_id::text
  AND NOT EXISTS (SELECT 1 FROM jobs o
                  WHERE o.kind = 'screen' AND o.unique_key = j.image_id::text || '/' || j.model_version_id::text);
