-- Every spelling that names a compliance point (canonical names and aliases), normalised the way
-- export values are, mapped to the canonical point and its cluster (the catalogue of docs/SOURCES.md).
with

catalogue as (
    select
        trim(cluster) as cluster,
        trim(compliance_point) as compliance_point
    from {{ ref('compliance_points') }}
),

aliases as (
    select
        alias,
        trim(compliance_point) as compliance_point
    from {{ ref('compliance_point_aliases') }}
),

names as (
    select
        {{ normalise_text('compliance_point') }} as name_key,
        compliance_point
    from catalogue
    union
    select
        {{ normalise_text('aliases.alias') }} as name_key,
        aliases.compliance_point
    from aliases
)

select
    names.name_key,
    catalogue.compliance_point,
    catalogue.cluster
from names
inner join catalogue
    on {{ normalise_text('names.compliance_point') }} = {{ normalise_text('catalogue.compliance_point') }}
