-- The screening rule's verdict as Lesions names it (`ScreeningFlag`: no-lesions-found, microaneurysms-only,
-- suspected-more-than-mild-dr), not only whether it asks for review. `flagged` stays beside it for the review
-- queries and its index, and always agrees with it; only gradable images carry either (ungradable is
-- `gradable = false` with its reasons, never a stored flag).
ALTER TABLE screening_results
    ADD COLUMN flag text CHECK (flag IN ('no-lesions-found', 'microaneurysms-only', 'suspected-more-than-mild-dr'));

-- Results stored before this migration kept only `flagged`, written by lesion-presence-v1: raised means suspected
-- more-than-mild DR; not raised means no haemorrhage or exudate, so microaneurysms only when the MA finding counts
-- any, else no lesions found.
UPDATE screening_results r SET flag = CASE
        WHEN r.flagged THEN 'suspected-more-than-mild-dr'
        WHEN EXISTS (SELECT 1 FROM findings f WHERE f.result_id = r.id AND f.lesion_class = 'MA' AND f.lesion_count > 0)
            THEN 'microaneurysms-only'
        ELSE 'no-lesions-found'
    END
WHERE r.flagged IS NOT NULL AND r.flag IS NULL;

ALTER TABLE screening_results
    ADD CHECK ((flag IS NULL) = (flagged IS NULL)),
    ADD CHECK (flagged = (flag = 'suspected-more-than-mild-dr'));
