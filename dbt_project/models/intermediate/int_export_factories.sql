-- Factories as the assessment exports know them: the name of the latest export's row, and whether
-- the record is a retired duplicate (a name ending in "(Obsolete)" on any of its rows).
with

findings as (
    select * from {{ ref('stg_assessment_export_rows') }}
),

ranked as (
    select
        factory_id,
        factory_name,
        bool_or(is_obsolete_factory) over (partition by factory_id) as is_obsolete,
        row_number() over (
            partition by factory_id order by exported_on desc nulls last, batch_id desc, source_row desc
        ) as name_rank
    from findings
    where factory_id is not null
)

select
    factory_id,
    factory_name,
    is_obsolete
from ranked
where name_rank = 1
