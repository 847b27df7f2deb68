-- A day's percentiles can never be out of order: p50 <= p95 <= max, for both latencies.
select *
from {{ ref('processing_latency_daily') }}
where processed_p50_s > processed_p95_s
    or processed_p95_s > processed_max_s
    or derivatives_p50_s > derivatives_p95_s
    or derivatives_p95_s > derivatives_max_s
