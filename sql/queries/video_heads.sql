-- Video-text runs side by side: each checkpoint's text->video and video->text retrieval on the validation
-- clips (recall@k, median rank: 1 is best), with the run's temporal head, frame count and frozen tower.
WITH video_runs AS (
    SELECT
        run_id,
        json_extract_string(config, '$.head') AS head,
        CAST(json_extract(config, '$.num_frames') AS INTEGER) AS frames,
        CAST(json_extract(config, '$.freeze_image_tower') AS BOOLEAN) AS frozen,
        json_extract_string(config, '$.model') AS model
    FROM runs
    WHERE flow = 'train_video'
),
scores AS (
    SELECT run_id, step,
        max(value) FILTER (WHERE name = 'val_text_to_video_r1') AS t2v_r1,
        max(value) FILTER (WHERE name = 'val_text_to_video_r5') AS t2v_r5,
        max(value) FILTER (WHERE name = 'val_text_to_video_r10') AS t2v_r10,
        max(value) FILTER (WHERE name = 'val_text_to_video_median_rank') AS t2v_median_rank,
        max(value) FILTER (WHERE name = 'val_video_to_text_r1') AS v2t_r1,
        max(value) FILTER (WHERE name = 'val_video_to_text_r5') AS v2t_r5,
        max(value) FILTER (WHERE name = 'val_video_to_text_r10') AS v2t_r10,
        max(value) FILTER (WHERE name = 'val_video_to_text_median_rank') AS v2t_median_rank,
        max(value) FILTER (WHERE name = 'val_loss') AS val_loss,
        max(value) FILTER (WHERE name = 'val_num_clips')::BIGINT AS clips
    FROM train_metrics
    WHERE name LIKE 'val_%'
    GROUP BY run_id, step
)
SELECT
    r.head, r.frames, r.frozen, r.model, s.step,
    s.t2v_r1, s.t2v_r5, s.t2v_r10, s.t2v_median_rank,
    s.v2t_r1, s.v2t_r5, s.v2t_r10, s.v2t_median_rank,
    s.val_loss, s.clips, c.uri AS checkpoint, r.run_id
FROM video_runs r
JOIN scores s USING (run_id)
LEFT JOIN checkpoints c ON c.run_id = s.run_id AND c.step = s.step
ORDER BY s.t2v_r1 DESC NULLS LAST, s.v2t_r1 DESC NULLS LAST, r.head, s.step DESC;
