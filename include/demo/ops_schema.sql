-- The programme's case-management database (docs/SOURCES.md), as the demo generator creates it.
-- Columns and keys follow the contract; created_at (not in the contract, harmless to extractors
-- that name their columns) records when a row was first entered, so edits show as
-- updated_at > created_at. Soft deletions set deleted_at (and updated_at) and keep the row.
-- References between tables are kept by the case-management application, not by foreign keys
-- (as in many such systems); extractors must not rely on them either.

create table if not exists public.factories (
    factory_id      int primary key,
    name            text not null,
    os_id           text,
    address         text,
    city            text,
    province        text,
    sector          text,
    enrolled_on     date,
    exited_on       date,
    exit_reason     text,
    workers_total   int,
    workers_female  int,
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now(),
    deleted_at      timestamptz
);

create table if not exists public.brands (
    brand_id    int primary key,
    name        text not null,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now()
);

create table if not exists public.factory_brands (
    factory_id  int not null,
    brand_id    int not null,
    since       date not null,
    until       date,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now(),
    primary key (factory_id, brand_id, since)
);

create table if not exists public.advisory_visits (
    visit_id      int primary key,
    factory_id    int not null,
    visit_date    date not null,
    phase         text,          -- 'initial', 'continued'
    mode          text,          -- 'onsite', 'virtual'
    advisor_code  text,
    topics        text,          -- semicolon-separated cluster names
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now(),
    deleted_at    timestamptz
);

create table if not exists public.courses (
    course_code  text primary key,
    title        text not null,
    days         numeric
);

create table if not exists public.training_sessions (
    session_id    int primary key,
    course_code   text not null,
    factory_id    int,   -- null: a multi-factory session
    city          text,
    starts_on     date not null,
    ends_on       date,
    trainer_code  text,
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now(),
    deleted_at    timestamptz
);

create table if not exists public.training_participants (
    participant_id  int primary key,   -- one person in one session
    session_id      int not null,
    person_ref      text not null,     -- the same person across sessions
    full_name       text,
    cnic            text,
    phone           text,
    gender          text,              -- 'female', 'male', 'other'; old rows 'F'/'M'
    role            text,
    factory_id      int,
    attended        boolean,
    pre_score       numeric,     -- 0-100 (whole numbers in the demo)
    post_score      numeric,
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now(),
    deleted_at      timestamptz
);

create table if not exists public.picc_meetings (
    meeting_id        int primary key,
    factory_id        int not null,
    held_on           date not null,
    workers_present   int,
    managers_present  int,
    women_present     int,
    created_at        timestamptz not null default now(),
    updated_at        timestamptz not null default now()
);

create table if not exists public.improvement_items (
    item_id           int primary key,
    factory_id        int not null,
    cycle             int,
    compliance_point  text,
    status            text,          -- 'pending', 'in_progress', 'completed'
    raised_on         date,
    due_on            date,
    closed_on         date,
    created_at        timestamptz not null default now(),
    updated_at        timestamptz not null default now()
);

-- @after-load: indexes are built once the rows are in (faster than maintaining them during COPY).
-- Incremental extraction reads rows changed since a watermark.
create index if not exists factories_updated_at on public.factories (updated_at);
create index if not exists brands_updated_at on public.brands (updated_at);
create index if not exists factory_brands_updated_at on public.factory_brands (updated_at);
create index if not exists advisory_visits_updated_at on public.advisory_visits (updated_at);
create index if not exists training_sessions_updated_at on public.training_sessions (updated_at);
create index if not exists training_participants_updated_at on public.training_participants (updated_at);
create index if not exists picc_meetings_updated_at on public.picc_meetings (updated_at);
create index if not exists improvement_items_updated_at on public.improvement_items (updated_at);

-- Which demo programme this database holds: a second run with the same seed and scale skips.
create table if not exists public.demo_generation (
    seed          int not null,
    scale         int not null,
    version       int not null,
    generated_at  timestamptz not null default now()
);
