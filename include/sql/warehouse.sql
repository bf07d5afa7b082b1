-- Schemas and landing tables of the warehouse. Idempotent: run by include.warehouse.bootstrap()
-- at the start of every pipeline run. dbt owns everything downstream (staging, marts, research).
--
-- raw.*        append-only, one row per source row, as received, with lineage columns:
--              _batch_id (audit.load_batches), _source (file name or source table),
--              _source_row (row number in the file / ordinal in the extract), _loaded_at
-- quarantine.* rows and batches that were rejected, with the reason
-- audit.*      batches, counts, watermarks, validation results
-- private.*    the pseudonym key's fingerprint (never the key) and the pseudonym function

create schema if not exists raw;
create schema if not exists quarantine;
create schema if not exists audit;
create schema if not exists private;
create schema if not exists stage;          -- per-batch tables between COPY and publish (include.load)

-- ---------------------------------------------------------------- audit
create table if not exists audit.load_batches (
    batch_id          bigserial primary key,
    source            text not null,          -- 'assessment_exports' or 'case_management'
    source_object     text not null,          -- file name, or source table
    checksum          text,                   -- sha256 of a file's content
    watermark_from    timestamptz,            -- case management: exclusive lower bound
    watermark_to      timestamptz,            -- case management: inclusive upper bound
    rows_read         bigint not null default 0,
    rows_loaded       bigint not null default 0,
    rows_quarantined  bigint not null default 0,
    status            text not null,          -- 'staging', 'loaded', 'rejected', 'quarantined', 'abandoned'
    message           text,
    started_at        timestamptz not null default clock_timestamp(),
    finished_at       timestamptz,
    constraint load_batches_counts_add_up check (
        status <> 'loaded' or rows_read = rows_loaded + rows_quarantined
    )
);
-- A file's content is loaded at most once, whatever its name.
-- Export files: the export's date (the first YYYY-MM-DD of the file name, else the file's
-- modification date; it decides which export of an assessment wins downstream, whatever the load
-- order) and the text encoding found in a CSV (e.g. 'utf-8', 'utf-8 (BOM)', 'utf-16-le (BOM)',
-- 'cp1252'; the rows are stored as UTF-8). Null for case-management batches.
alter table audit.load_batches add column if not exists exported_on date;
alter table audit.load_batches add column if not exists file_encoding text;
create unique index if not exists load_batches_one_load_per_checksum
    on audit.load_batches (source, checksum) where status = 'loaded' and checksum is not null;

-- Case-management extraction: the last committed watermark per source table (include.extract.case_management).
-- Moved only in the transaction that publishes the batch to raw.
create table if not exists audit.watermarks (
    source_object  text primary key,      -- 'public.<table>'
    watermark      timestamptz,           -- greatest change time (updated_at / deleted_at) loaded
    batch_id       bigint not null,       -- the batch that moved it
    moved_at       timestamptz not null default now()
);

-- One row per batch x expectation (include.validate.suites): what was checked and what failed.
create table if not exists audit.validation_results (
    batch_id           bigint not null,
    suite              text not null,
    expectation        text not null,     -- expectation type and its column(s)
    expectation_id     text,
    severity           text not null,     -- 'critical' or 'warning' (the suite's meta.severity)
    success            boolean not null,
    unexpected_count   bigint,
    unexpected_values  jsonb,             -- a few examples, never the whole column
    details            text,              -- exception text when the expectation could not run
    validated_at       timestamptz not null default now()
);
create index if not exists validation_results_batch on audit.validation_results (batch_id);

-- ---------------------------------------------------------------- raw: assessment exports
-- Columns exactly as the global system spells them (docs/SOURCES.md, assessment exports), kept as text: raw is what was
-- received; staging casts.
--
-- Partitioned by batch: include.load publishes an export batch by ATTACHing its stage table as the
-- partition raw.assessment_export_rows_b<batch_id> (no second copy of the rows; see
-- docs/LOADING.md). Readers (dbt) query the parent and see one table. The DEFAULT partition takes
-- rows inserted directly (fixtures, manual repairs) and must hold no row of a batch the loader
-- publishes (ATTACH checks it; an empty default costs nothing). ATTACH needs ownership of the parent:
-- roles.sql makes `loader` its owner.
do $$
declare
    legacy regclass := to_regclass('raw.assessment_export_rows');
    top bigint;
begin
    -- Migration of a warehouse created before partitioning: the old plain table becomes the
    -- DEFAULT partition, with a CHECK constraint that lets later ATTACHes skip scanning it.
    if legacy is not null and (select relkind from pg_class where oid = legacy) = 'r' then
        alter table raw.assessment_export_rows rename to assessment_export_rows_default;
        select coalesce(max(_batch_id), 0) into top from raw.assessment_export_rows_default;
        execute format('alter table raw.assessment_export_rows_default add constraint '
                       'legacy_batches check (_batch_id <= %s)', top);
    end if;
end $$;
create table if not exists raw.assessment_export_rows (
    "Country"               text,
    "Factory.Assessed.ID"   text,
    "Factory.Assessed.Name" text,
    "Quest.ID"              text,
    "Assesment.Start.Date"  text,
    "Cycle"                 text,
    "Question.type"         text,
    "Question.ID"           text,
    "Q.Label"               text,
    "CP"                    text,
    "Cluster"               text,
    "Finding"               text,
    "Tags"                  text,
    "TQ.Name"               text,
    _batch_id               bigint not null,
    _source                 text not null,
    _source_row             bigint not null,  -- record number in the file (header = 1)
    _loaded_at              timestamptz not null default now()  -- when the batch was staged
) partition by list (_batch_id);
do $$
begin
    if to_regclass('raw.assessment_export_rows_default') is null then
        create table raw.assessment_export_rows_default
            partition of raw.assessment_export_rows default;
    elsif not exists (select 1 from pg_inherits where inhrelid = 'raw.assessment_export_rows_default'::regclass) then
        alter table raw.assessment_export_rows attach partition raw.assessment_export_rows_default default;
    end if;
end $$;

-- ---------------------------------------------------------------- raw: case management (docs/SOURCES.md)
-- One row per extracted version of a source row; typed as in the source.
create table if not exists raw.cm_factories (
    factory_id int, name text, os_id text, address text, city text, province text, sector text,
    enrolled_on date, exited_on date, exit_reason text, workers_total int, workers_female int,
    updated_at timestamptz, deleted_at timestamptz,
    _batch_id bigint not null, _source text not null, _source_row bigint not null,
    _loaded_at timestamptz not null default now()
);
create table if not exists raw.cm_brands (
    brand_id int, name text, updated_at timestamptz,
    _batch_id bigint not null, _source text not null, _source_row bigint not null,
    _loaded_at timestamptz not null default now()
);
create table if not exists raw.cm_factory_brands (
    factory_id int, brand_id int, since date, until date, updated_at timestamptz,
    _batch_id bigint not null, _source text not null, _source_row bigint not null,
    _loaded_at timestamptz not null default now()
);
create table if not exists raw.cm_advisory_visits (
    visit_id int, factory_id int, visit_date date, phase text, mode text, advisor_code text,
    topics text, updated_at timestamptz, deleted_at timestamptz,
    _batch_id bigint not null, _source text not null, _source_row bigint not null,
    _loaded_at timestamptz not null default now()
);
create table if not exists raw.cm_courses (
    course_code text, title text, days numeric,
    _batch_id bigint not null, _source text not null, _source_row bigint not null,
    _loaded_at timestamptz not null default now()
);
create table if not exists raw.cm_training_sessions (
    session_id int, course_code text, factory_id int, city text, starts_on date, ends_on date,
    trainer_code text, updated_at timestamptz, deleted_at timestamptz,
    _batch_id bigint not null, _source text not null, _source_row bigint not null,
    _loaded_at timestamptz not null default now()
);
-- full_name, cnic, phone are personal data: they stop here (raw is readable by loader and
-- transformer only) and never reach a mart.
create table if not exists raw.cm_training_participants (
    participant_id int, session_id int, person_ref text, full_name text, cnic text, phone text,
    gender text, role text, factory_id int, attended boolean, pre_score numeric, post_score numeric,
    updated_at timestamptz, deleted_at timestamptz,
    _batch_id bigint not null, _source text not null, _source_row bigint not null,
    _loaded_at timestamptz not null default now()
);
create table if not exists raw.cm_picc_meetings (
    meeting_id int, factory_id int, held_on date, workers_present int, managers_present int,
    women_present int, updated_at timestamptz,
    _batch_id bigint not null, _source text not null, _source_row bigint not null,
    _loaded_at timestamptz not null default now()
);
create table if not exists raw.cm_improvement_items (
    item_id int, factory_id int, cycle int, compliance_point text, status text, raised_on date,
    due_on date, closed_on date, updated_at timestamptz,
    _batch_id bigint not null, _source text not null, _source_row bigint not null,
    _loaded_at timestamptz not null default now()
);

-- ---------------------------------------------------------------- raw: survey waves (docs/SURVEYS.md)
-- >>> surveys (include/extract/surveys.py, include/load/surveys.py; docs/SURVEYS.md)
-- One row per submission per loaded file (a re-export loads its submissions again; staging keeps
-- the latest file's), every column as text, named as the survey tool names it. The question
-- columns are every name any form version uses (seed survey_question_crosswalk; a test checks
-- that this list and include.extract.surveys.raw_columns agree). respondent/name and respondent/phone are
-- personal data: they stop here (the crosswalk does not map them, so staging never reads them).
create table if not exists raw.survey_worker_rows (
    _uuid text, _submission_time text, _form_version text, wave text, factory_id text, consent text,
    "respondent/name" text, "respondent/phone" text, "respondent/gender" text,
    "respondent/age" text, "respondent/tenure_months" text, "respondent/role" text,
    "pay/last_month_pkr" text, "pay/payslip" text, "hours/last_week" text, "concerns/verbal" text,
    "concerns/sexual" text, "concerns/physical_abuse" text, "concerns/low_wages" text,
    "concerns/late_payment" text, "concerns/excessive_overtime" text, "voice/knows_picc" text,
    "wellbeing/satisfaction" text, "training/attended" text, "concerns/verbal_abuse" text,
    "concerns/sexual_harassment" text, "wellbeing/life_satisfaction" text,
    _batch_id bigint not null, _source text not null, _source_row bigint not null,
    _loaded_at timestamptz not null default now()
);
create table if not exists raw.survey_manager_rows (
    _uuid text, _submission_time text, _form_version text, wave text, factory_id text, consent text,
    "hr/workers_total" text, "hr/workers_female" text, "hr/monthly_turnover_pct" text,
    "hr/absenteeism_pct" text, "prod/line_efficiency_pct" text, "prod/orders_lost_last_year" text,
    _batch_id bigint not null, _source text not null, _source_row bigint not null,
    _loaded_at timestamptz not null default now()
);
-- <<< surveys

-- ---------------------------------------------------------------- stage: helpers of the CSV fast path
-- include.load COPYs a contract-shaped CSV straight into stage.batch_<id>; these find and describe,
-- in SQL, the rows the Python parser would have quarantined (include.extract.chunks does the same).

-- A dd/mm/yyyy-shaped value that is no calendar date (31/02/2024, 00/01/2024, 01/13/2024, year 0).
-- Other shapes are not the parser's business (a GX rule checks the format). Not STRICT, so that the
-- planner inlines it (3x faster over a batch); null gives null, which no WHERE keeps.
create or replace function stage.impossible_ddmmyyyy(v text) returns boolean
language sql immutable parallel safe as $$
    select case
        when v !~ '^[0-9]{2}/[0-9]{2}/[0-9]{4}$' then false
        when substr(v, 7, 4)::int < 1 or substr(v, 4, 2)::int not between 1 and 12 then true
        else substr(v, 1, 2)::int not between 1 and extract(day from
            make_date(substr(v, 7, 4)::int, substr(v, 4, 2)::int, 1) + interval '1 month' - interval '1 day')::int
    end
$$;

-- The fields as one CSV record (for a quarantined row's raw text): a field holding a comma, a quote
-- or a line break is quoted, quotes doubled; null is empty. Same rule as include.extract.rejects.csv_record.
create or replace function stage.csv_record(fields text[]) returns text
language sql immutable parallel safe as $$
    select string_agg(
        case when f ~ '[",\r\n]' then '"' || replace(f, '"', '""') || '"' else coalesce(f, '') end,
        ',' order by i)
    from unnest(fields) with ordinality as t(f, i)
$$;

-- ---------------------------------------------------------------- quarantine
create table if not exists quarantine.rejected_rows (
    batch_id     bigint not null,
    source       text not null,       -- file name or source table
    source_row   bigint,              -- row number in the file (header = row 1)
    raw_text     text,                -- the row as received
    reason       text not null,       -- which rule it broke
    rejected_at  timestamptz not null default now()
);
-- Export records: the record's Quest.ID when it can be read (null otherwise, and for whole
-- files): an assessment with a rejected record is held out of every count downstream.
alter table quarantine.rejected_rows add column if not exists assessment_id text;
-- Case management: a keyed fingerprint of the quarantined row version (include.extract.case_management.row_version),
-- so that a version read again is not quarantined twice, without keeping its personal values.
alter table quarantine.rejected_rows add column if not exists row_version text;
create index if not exists rejected_rows_version on quarantine.rejected_rows (source, row_version)
    where row_version is not null;

-- ---------------------------------------------------------------- private: pseudonym key
-- Only a fingerprint of the key is stored: it identifies the key (a run with another key fails,
-- include.warehouse.check_key) and cannot give it back. The key reaches the database only as
-- session settings of the connections that compute pseudonyms (libpq options of dbt's sessions,
-- include.warehouse.key_options): never in a table, a statement or a dump.
create table if not exists private.pseudonym_key (
    id            int primary key check (id = 1),
    fingerprint   text not null,      -- identifies the key without revealing it
    installed_at  timestamptz not null default now()
);
-- Earlier versions stored the keyed HMAC pads here (the key in all but name): gone.
alter table private.pseudonym_key drop column if exists inner_pad, drop column if exists outer_pad;

-- Cells of the research schema suppressed by a build, with the population they were built from: a
-- later build keeps a cell suppressed while its population is unchanged, so that two releases
-- never show one cell both hidden and published (macros/research_suppression.sql).
create table if not exists private.suppression_register (
    table_name           text not null,
    cell                 text not null,     -- the cell's dimensions, e.g. '2022|SST|female|worker'
    population           text not null,     -- sha256 of the sorted ids the cell was built from
    reason               text not null,     -- why it was first suppressed
    first_suppressed_at  timestamptz not null default now(),
    primary key (table_name, cell, population)
);

create or replace function private.no_pseudonym_key() returns bytea
language plpgsql stable as $$
begin
    raise exception 'no pseudonym key in this session'
        using hint = 'connect with include.warehouse.key_options() (dbt gets them through PGOPTIONS)';
end
$$;

-- private.pseudonym('person', person_ref) = hex HMAC-SHA256(key, 'person:' || person_ref), from the
-- keyed pads of the session (include.warehouse.hmac_pads). Built-in sha256() only, no pgcrypto.
create or replace function private.pseudonym(domain text, value text) returns text
language sql stable strict as $$
    select encode(sha256(
        coalesce(
            decode(nullif(current_setting('betterwork.pseudonym_outer_pad', true), ''), 'hex'),
            private.no_pseudonym_key()
        )
        || sha256(
            coalesce(
                decode(nullif(current_setting('betterwork.pseudonym_inner_pad', true), ''), 'hex'),
                private.no_pseudonym_key()
            )
            || convert_to(domain || ':' || value, 'UTF8')
        )
    ), 'hex')
$$;
