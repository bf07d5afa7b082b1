-- One row per improvement plan item, latest version. The compliance point is matched to the
-- catalogue the way export findings are (case and spacing normalised, aliases of older tool
-- versions); an unknown spelling keeps the row with a null point. "As of" is the run's date
-- (dbt var `as_of`, default current_date).
{%- set as_of = var('as_of', none) %}

with

items as (
    select * from {{ ref('stg_improvement_items') }}
),

names as (
    select * from {{ ref('stg_compliance_point_names') }}
),

matched as (
    select
        items.*,
        names.compliance_point,
        names.cluster,
        coalesce(items.status = 'completed', false) as is_completed
    from items
    left join names
        on {{ normalise_text('items.compliance_point_raw') }} = names.name_key
)

select
    item_id,
    factory_id,
    cycle,
    compliance_point,
    compliance_point_raw,
    cluster,
    status,
    raised_on,
    due_on,
    closed_on,
    is_completed,
    case when is_completed then closed_on - raised_on end as days_to_close,
    coalesce(is_completed and closed_on <= due_on, false) as closed_on_time,
    coalesce(
        not is_completed
        and due_on < {% if as_of %}'{{ as_of }}'::date{% else %}current_date{% endif %},
        false
    ) as is_overdue
from matched
