-- Each filter of a curation run: what it removes on its own, what it removes that no other filter does, and the
-- samples left once it and the filters before it (in `position` order) have run: the funnel.
CREATE TABLE curation_filters (
    run_id                 VARCHAR NOT NULL,
    position               INTEGER NOT NULL,  -- 1 = first in the funnel
    filter                 VARCHAR NOT NULL,  -- min_clip_score | clip_score_top_fraction | ... | dedup | decontaminate
    rule                   VARCHAR NOT NULL,  -- e.g. 'CLIP score < 0.25'
    removed_alone          BIGINT NOT NULL,   -- on the whole input
    removed_beyond_others  BIGINT NOT NULL,   -- removed by this filter and by no other
    remaining_after        BIGINT NOT NULL,   -- kept by this filter and every filter before it
    total                  BIGINT NOT NULL,
    time                   TIMESTAMPTZ NOT NULL
);
