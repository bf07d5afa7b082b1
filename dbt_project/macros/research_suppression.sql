{#- Disclosure control for the research schema (docs/ACCESS.md states the rules).

    research_k()                    the threshold k: dbt var `suppression_k`, else the environment's
                                    SUPPRESSION_K (include/config.py), else 5.
    research_nested_suppression()   primary + complementary suppression of count cells whose factory
                                    sets are nested (the panels of cp_noncompliance_rate).
    research_k_anonymise()          coarsen quasi-identifiers of a one-row-per-factory relation until
                                    every published combination is shared by at least k factories.
-#}

{% macro research_k() -%}
    {%- set k = var('suppression_k', env_var('SUPPRESSION_K', '5')) | int -%}
    {%- if k < 1 -%}
        {{ exceptions.raise_compiler_error("suppression_k must be a positive integer, got " ~ k) }}
    {%- endif -%}
    {{ k }}
{%- endmacro %}


{#- Cells of `relation` form chains: rows with the same `chain_by` values whose factory sets are
    nested, ordered from the largest set (`chain_order` ascending). A cell is
      'primary'        when built from fewer than k factories (`count_column` < k);
      'complementary'  when its set differs from the last published cell of its chain by 1 … k-1
                       factories: both published, their difference would describe that small group.
    Walking each chain from its largest cell keeps the largest sets published. Published cells of a
    chain then differ pairwise by 0 (the same factories) or at least k factories, and no suppressed
    cell is the difference of published ones. Returns every column of `relation` plus
    `suppression` ('primary', 'complementary' or null). -#}
{% macro research_nested_suppression(relation, chain_by, chain_order, count_column, k) -%}
    {%- set same_chain -%}
        {%- for col in chain_by %} and next_cell.{{ col }} is not distinct from walk.{{ col }}{% endfor -%}
    {%- endset -%}
    with recursive chain as (
        select
            cells.*,
            row_number() over (
                partition by {{ chain_by | join(', ') }} order by {{ chain_order }}
            ) as chain_position
        from {{ relation }} as cells
    ),

    walk as (
        select
            chain.*,
            case when chain.{{ count_column }} < {{ k }} then 'primary' end as suppression,
            case when chain.{{ count_column }} >= {{ k }} then chain.{{ count_column }} end as last_published
        from chain
        where chain.chain_position = 1

        union all

        select
            next_cell.*,
            decided.suppression,
            case when decided.suppression is null then next_cell.{{ count_column }} else walk.last_published end
        from walk
        inner join chain as next_cell
            on next_cell.chain_position = walk.chain_position + 1 {{ same_chain }}
        cross join lateral (
            select
                case
                    when next_cell.{{ count_column }} < {{ k }} then 'primary'
                    when walk.last_published - next_cell.{{ count_column }} between 1 and {{ k }} - 1
                        then 'complementary'
                end as suppression
        ) as decided
    )

    select * from walk
{%- endmacro %}


{#- One row per `key` of `relation`, with its quasi-identifiers coarsened by withholding them (null)
    from the last of `quasi_identifiers` backwards (list them most useful first):
      level 0 publishes all of them, level j withholds the last j.
    Each row gets the lowest level at which its published combination is shared by at least k
    of the rows still unplaced; if the rows left at the top level (all withheld) are fewer than k,
    the smallest published class joins them. So every published combination (withheld = null) is
    shared by at least k rows, unless there are fewer than k in all. `fixed` columns are always
    published and every class lies within one combination of them (e.g. the cycle of a panel row);
    the caller makes sure each such combination has at least k rows.
    Unknown values must be non-null (e.g. 'unknown') so that null always means withheld.
    Returns `key`, the `fixed` columns, `quasi_identifiers_withheld` (the level) and the published
    quasi-identifiers. -#}
{% macro research_k_anonymise(relation, key, quasi_identifiers, k, fixed=[]) -%}
    {%- set n = quasi_identifiers | length -%}
    {%- set fixed_cols -%}{% for f in fixed %}{{ f }}, {% endfor %}{%- endset -%}
    with kanon_rest_0 as (
        select {{ key }}, {{ fixed_cols }}{{ quasi_identifiers | join(', ') }} from {{ relation }}
    ),
    {%- for level in range(n + 1) %}
    {%- set kept = fixed + quasi_identifiers[: n - level] %}

    kanon_placed_{{ level }} as (
        select {{ key }}, {{ level }} as level
        from (
            select
                {{ key }},
                count(*) over ({% if kept %}partition by {{ kept | join(', ') }}{% endif %}) as class_size
            from kanon_rest_{{ level }}
        ) as classes
        {%- if level < n %}
        where class_size >= {{ k }}
        {%- endif %}
    ),
    {%- if level < n %}

    kanon_rest_{{ level + 1 }} as (
        select rest.*
        from kanon_rest_{{ level }} as rest
        where not exists (
            select 1 from kanon_placed_{{ level }} as placed where placed.{{ key }} = rest.{{ key }}
        )
    ),
    {%- endif %}
    {%- endfor %}

    kanon_assigned as (
        {%- for level in range(n + 1) %}
        select {{ key }}, level from kanon_placed_{{ level }}
        {%- if not loop.last %}
        union all
        {%- endif %}
        {%- endfor %}
    ),

    kanon_published as (
        select
            assigned.{{ key }},
            assigned.level
            {%- for f in fixed %},
            factories.{{ f }}
            {%- endfor %}
            {%- for qi in quasi_identifiers %},
            case when assigned.level < {{ n - loop.index0 }} then factories.{{ qi }} end as {{ qi }}
            {%- endfor %}
        from kanon_assigned as assigned
        inner join kanon_rest_0 as factories
            on assigned.{{ key }} = factories.{{ key }}
    ),

    kanon_sized as (
        select
            kanon_published.*,
            count(*) over (partition by {{ fixed_cols }}level, {{ quasi_identifiers | join(', ') }}) as class_size,
            count(*) filter (where level = {{ n }}) over (
                {% if fixed %}partition by {{ fixed | join(', ') }}{% endif %}
            ) as top_size
        from kanon_published
    ),

    kanon_joins_top as (
        select {% if fixed %}distinct on ({{ fixed | join(', ') }}) {% endif %}
            {{ fixed_cols }}level, {{ quasi_identifiers | join(', ') }}
        from kanon_sized
        where level < {{ n }} and top_size between 1 and {{ k }} - 1
        order by {{ fixed_cols }}class_size, level desc, {{ quasi_identifiers | join(', ') }}
        {%- if not fixed %}
        limit 1
        {%- endif %}
    )

    select
        sized.{{ key }},
        {%- for f in fixed %}
        sized.{{ f }},
        {%- endfor %}
        case when moved.level is null then sized.level else {{ n }} end as quasi_identifiers_withheld
        {%- for qi in quasi_identifiers %},
        case when moved.level is null then sized.{{ qi }} end as {{ qi }}
        {%- endfor %}
    from kanon_sized as sized
    left join kanon_joins_top as moved
        on
            sized.level = moved.level
            {%- for f in fixed %}
            and sized.{{ f }} = moved.{{ f }}
            {%- endfor %}
            {%- for qi in quasi_identifiers %}
            and sized.{{ qi }} is not distinct from moved.{{ qi }}
            {%- endfor %}
{%- endmacro %}


{#- A number of months as its 6-month band: 0 -> '0-5', 14 -> '12-17' (negative: '<0'). -#}
{% macro research_month_band(months) -%}
    case
        when {{ months }} < 0 then '<0'
        else (({{ months }}) / 6 * 6)::text || '-' || (({{ months }}) / 6 * 6 + 5)::text
    end
{%- endmacro %}


{#- Stable suppression across builds and releases. A cell is identified by its table and a text key
    (`cell`), its population by the sha256 of the sorted ids it is built from (`population`): not
    keyed, so that rotating the pseudonym key keeps the register. private.suppression_register holds
    every (table, cell, population) ever suppressed; a later build keeps such a cell suppressed
    ('stable') while its population is the same. Only `transformer` reads or writes the register. -#}
{% macro research_population(id_expression) -%}
    encode(sha256(convert_to(string_agg({{ id_expression }}, ',' order by {{ id_expression }}), 'UTF8')), 'hex')
{%- endmacro %}


{% macro research_registered(table_name, cell, population) -%}
    exists (
        select 1 from private.suppression_register as register
        where
            register.table_name = '{{ table_name }}'
            and register.cell = {{ cell }}
            and register.population = {{ population }}
    )
{%- endmacro %}


{#- Post-hook of a model with columns cell, population and suppression: remember its suppressed cells. -#}
{% macro research_register(table_name) -%}
    insert into private.suppression_register (table_name, cell, population, reason)
    select '{{ table_name }}', cell, population, suppression
    from {{ this }}
    where suppression is not null
    on conflict do nothing
{%- endmacro %}


{#- Suppression of a table of period figures (research.programme_kpis and its dialogue columns):
    one cell per measure × period, built from the factories in `contributors` (measure, period,
    factory_id as text; a row per contributing record). A cell of 1 … k-1 factories is 'primary';
    a cell suppressed by an earlier build with the same population is 'stable' (the register, as
    for training cells). Additive measures (`measures`.is_additive) of the years add up to period
    'all': where years are suppressed and `all` is published, further years (fewest factories
    first) are 'complementary' until the suppressed years together cover at least k factories, or
    else `all` is. Returns measure, period, cell, population, factories and suppression. -#}
{% macro research_period_suppression(table_name, contributors, measures, periods) -%}
    {%- set k = research_k() -%}
    with cells as (
        select
            m.measure,
            m.is_additive,
            p.period,
            m.measure || '|' || p.period as cell,
            count(distinct c.factory_id) as factories,
            {{ research_population('c.factory_id::text') }} as population
        from {{ measures }} as m
        cross join {{ periods }} as p
        left join {{ contributors }} as c
            on m.measure = c.measure and p.period = c.period
        group by m.measure, m.is_additive, p.period
    ),

    judged as (
        select
            cells.*,
            cells.factories between 1 and {{ k }} - 1 as is_small,
            {{ research_registered(table_name, 'cells.cell', 'cells.population') }} as is_kept
        from cells
    ),

    marked as (
        select
            judged.*,
            judged.is_small or judged.is_kept as is_withheld
        from judged
    ),

    -- additive measures with a withheld year while their `all` is published
    exposed as (
        select years.measure
        from marked as years
        inner join marked as total
            on years.measure = total.measure and total.period = 'all'
        where years.is_additive and years.period <> 'all' and not total.is_withheld
        group by years.measure
        having bool_or(years.is_withheld)
    ),

    candidates as (
        select
            marked.measure,
            marked.period,
            row_number() over (partition by marked.measure order by marked.factories, marked.period) as pick
        from marked
        inner join exposed on marked.measure = exposed.measure
        where marked.period <> 'all' and not marked.is_withheld and marked.factories > 0
    ),

    steps as (
        select
            measure,
            0 as step
        from exposed
        union all
        select
            measure,
            pick
        from candidates
    ),

    step_coverage as (
        select
            steps.measure,
            steps.step,
            count(distinct c.factory_id) as factories
        from steps
        inner join {{ contributors }} as c
            on steps.measure = c.measure
        where
            c.period in (
                select marked.period from marked
                where marked.measure = steps.measure and marked.period <> 'all' and marked.is_withheld
            )
            or c.period in (
                select candidates.period from candidates
                where candidates.measure = steps.measure and candidates.pick <= steps.step
            )
        group by steps.measure, steps.step
    ),

    enough as (
        select
            measure,
            min(step) as step
        from step_coverage
        where factories >= {{ k }}
        group by measure
    )

    select
        marked.measure,
        marked.period,
        marked.cell,
        marked.population,
        marked.factories,
        case
            when marked.is_small then 'primary'
            when marked.is_kept then 'stable'
            when candidates.pick <= enough.step then 'complementary'
            when marked.period = 'all' and exposed.measure is not null and enough.measure is null
                then 'complementary'
        end as suppression
    from marked
    left join exposed on marked.measure = exposed.measure
    left join enough on marked.measure = enough.measure
    left join candidates on marked.measure = candidates.measure and marked.period = candidates.period
{%- endmacro %}
