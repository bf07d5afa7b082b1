{{ config(
    schema='intermediate',
    alias='research_training_cells',
    contract={'enforced': false},
    persist_docs={'relation': false, 'columns': false},
    grants={},
    post_hook="{{ research_register('training_participation') }}",
) }}

-- The cells of research.training_participation and their suppression (docs/ACCESS.md): one cell per
-- session year × course × gender × role. A person row would put role (union_rep: trade-union
-- membership, special-category data), gender and test scores next to a factory. A cell built from
-- fewer than k people, or from 1 … k-1 factories, is suppressed (primary). programme_kpis publishes
-- each year's totals, so within a year the suppressed cells must together hold at least k people
-- (and no factory group of 1 … k-1): further cells of the year, fewest people first, are suppressed
-- until they do, or else every cell of the year (complementary). A cell suppressed by an earlier
-- build stays suppressed while the participations it is built from are the same ('stable'; the
-- register is private.suppression_register, written by the post-hook). Lives in `intermediate`:
-- researchers cannot read it.
with

participations as (
    select
        participant_id,
        person_key,
        factory_id,
        course_code,
        gender,
        role,
        attended,
        pre_score,
        post_score,
        extract(year from starts_on)::int as session_year
    from {{ ref('fct_training_participation') }}
),

cells as (
    select
        session_year,
        course_code,
        gender,
        role,
        count(distinct person_key) as participants,
        count(*) as participations,
        count(*) filter (where attended) as attended_participations,
        count(distinct factory_id) as factories,
        avg(pre_score)::double precision as mean_pre_score,
        avg(post_score)::double precision as mean_post_score,
        {{ research_population('participant_id::text') }} as population
    from participations
    group by session_year, course_code, gender, role
),

keyed as (
    select
        cells.*,
        concat_ws(
            '|', coalesce(cells.session_year::text, '-'), coalesce(cells.course_code, '-'),
            coalesce(cells.gender, '-'), coalesce(cells.role, '-')
        ) as cell
    from cells
),

judged as (
    select
        keyed.*,
        keyed.participants < {{ research_k() }}
        or keyed.factories between 1 and {{ research_k() }} - 1 as is_small,
        {{ research_registered('training_participation', 'keyed.cell', 'keyed.population') }} as is_kept
    from keyed
),

judged_all as (
    select
        judged.*,
        judged.is_small or judged.is_kept as is_primary
    from judged
),

candidates as (
    select
        session_year,
        course_code,
        gender,
        role,
        row_number() over (
            partition by session_year order by participants, course_code, gender, role
        ) as pick
    from judged_all
    where not is_primary
),

steps as (
    select distinct
        session_year,
        0::bigint as step
    from judged_all
    where is_primary
    union all
    select
        candidates.session_year,
        candidates.pick
    from candidates
    where candidates.session_year in (
        select judged_all.session_year from judged_all
        where judged_all.is_primary
    )
),

members as (
    select
        participations.*,
        judged.is_primary,
        candidates.pick
    from participations
    inner join judged_all as judged
        on
            participations.session_year is not distinct from judged.session_year
            and participations.course_code is not distinct from judged.course_code
            and participations.gender is not distinct from judged.gender
            and participations.role is not distinct from judged.role
    left join candidates
        on
            judged.session_year is not distinct from candidates.session_year
            and judged.course_code is not distinct from candidates.course_code
            and judged.gender is not distinct from candidates.gender
            and judged.role is not distinct from candidates.role
),

step_coverage as (
    select
        steps.session_year,
        steps.step,
        count(distinct members.person_key) as people,
        count(distinct members.factory_id) as factories
    from steps
    inner join members
        on
            steps.session_year is not distinct from members.session_year
            and (members.is_primary or steps.step >= members.pick)
    group by steps.session_year, steps.step
),

enough as (
    select
        session_year,
        min(step) as step
    from step_coverage
    where
        people >= {{ research_k() }}
        and (factories = 0 or factories >= {{ research_k() }})
    group by session_year
),

decided as (
    select
        judged.*,
        case
            when judged.is_small then 'primary'
            when judged.is_kept then 'stable'
            when
                judged.session_year in (
                    select j.session_year from judged_all as j
                    where j.is_primary
                )
                and (enough.step is null or candidates.pick <= enough.step)
                then 'complementary'
        end as suppression
    from judged_all as judged
    left join candidates
        on
            judged.session_year is not distinct from candidates.session_year
            and judged.course_code is not distinct from candidates.course_code
            and judged.gender is not distinct from candidates.gender
            and judged.role is not distinct from candidates.role
    left join enough
        on judged.session_year is not distinct from enough.session_year
)

select
    cell,
    population,
    session_year,
    course_code,
    gender,
    role,
    participants,
    participations,
    attended_participations,
    mean_pre_score,
    mean_post_score,
    suppression
from decided
