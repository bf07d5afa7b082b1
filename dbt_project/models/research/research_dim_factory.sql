-- One row per factory (retired "(Obsolete)" duplicates left out), under its keyed pseudonym, with
-- coarsened quasi-identifiers only: no name, OS id, address, city or programme factory id. Where
-- a combination of them would be shared by fewer than k factories, the least useful ones are
-- withheld (null), enrolment year first, then female share, size, sector and province.
with

factories as (
    select * from {{ ref('dim_factory') }}
    where not is_obsolete
),

coarsened as (
    select
        private.pseudonym('factory', factory_id::text) as factory_key,
        coalesce(province, 'unknown') as province,
        coalesce(sector, 'unknown') as sector,
        case
            when workers_total is null then 'unknown'
            when workers_total < 500 then '0-499'
            when workers_total < 1000 then '500-999'
            when workers_total < 2500 then '1000-2499'
            when workers_total < 5000 then '2500-4999'
            else '5000+'
        end as size_band,
        case
            when female_worker_share is null then 'unknown'
            when female_worker_share < 0.25 then '0-24%'
            when female_worker_share < 0.50 then '25-49%'
            when female_worker_share < 0.75 then '50-74%'
            else '75-100%'
        end as female_share_band,
        coalesce(extract(year from enrolled_on)::int::text, 'unknown') as enrolment_year
    from factories
),

anonymised as (
    {{ research_k_anonymise(
        'coarsened', 'factory_key',
        ['province', 'sector', 'size_band', 'female_share_band', 'enrolment_year'],
        research_k()
    ) }}
)

select
    factory_key,
    province,
    sector,
    size_band,
    female_share_band,
    enrolment_year,
    quasi_identifiers_withheld::int as quasi_identifiers_withheld
from anonymised
