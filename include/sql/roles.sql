-- Database roles and their privileges (least privilege). Idempotent; run by
-- include.warehouse.bootstrap() after warehouse.sql. Roles are server-wide, grants per database.
--
-- loader       writes raw, audit, quarantine, stage          (pipeline sessions: SET ROLE loader)
-- transformer  reads raw and private, builds staging/marts/research with dbt (profile role)
-- analyst      reads marts only: staff and BI tools
-- researcher   reads research only: academic partners
-- Login and passwords for analyst/researcher are set by include.serve.access from configuration.

do $$
declare r text;
begin
    foreach r in array array['loader', 'transformer', 'analyst', 'researcher'] loop
        if not exists (select 1 from pg_roles where rolname = r) then
            execute format('create role %I nologin', r);
        end if;
    end loop;
end $$;

-- A pipeline login that is not a superuser acts through these roles: it becomes a member now, before
-- it hands tables and schemas to them below. Releases read as researcher. Granting needs CREATEROLE
-- (PostgreSQL 15) or the ADMIN option on the roles (16+: a superuser grants it once, or the login
-- created the roles itself); docs/ACCESS.md.
do $$
declare r text;
begin
    if not (select rolsuper from pg_roles where rolname = current_user) then
        foreach r in array array['loader', 'transformer', 'researcher'] loop
            if not pg_has_role(current_user, r, 'member') then
                begin
                    execute format('grant %I to %I', r, current_user);
                exception when insufficient_privilege then
                    raise exception 'the pipeline login % is not a member of role % and may not grant it',
                        current_user, r
                        using hint = format(
                            'as a superuser, run once: grant loader, transformer, researcher, analyst to %I'
                            ' with admin option', current_user
                        );
                end;
            end if;
        end loop;
    end if;
end $$;

-- Nobody gets anything by default.
revoke all on schema raw, quarantine, audit, private, stage from public;
revoke create on schema public from public;

-- loader
grant usage on schema raw, quarantine, audit, stage to loader;
grant create on schema stage to loader;
grant select, insert on all tables in schema raw, quarantine to loader;
grant select, insert, update on all tables in schema audit to loader;
grant usage, select on all sequences in schema audit to loader;
-- Export batches are published by ATTACH PARTITION of the stage table, moved into raw (include.load):
-- that needs ownership of the partitioned table and CREATE on raw. Readers go through the parent, whose
-- grants (below) are all they need.
grant create on schema raw to loader;
alter table raw.assessment_export_rows owner to loader;
alter table raw.assessment_export_rows_default owner to loader;

-- transformer: reads what was loaded, and the pseudonym key; owns the schemas dbt builds.
grant usage on schema raw, audit, private to transformer;
grant select on all tables in schema raw, audit, private to transformer;
grant insert on private.suppression_register to transformer;
grant execute on function private.pseudonym(text, text) to transformer;
revoke execute on function private.pseudonym(text, text) from public;
do $$
declare s text;
begin
    foreach s in array array['staging', 'intermediate', 'marts', 'research', 'snapshots'] loop
        execute format('create schema if not exists %I authorization transformer', s);
    end loop;
end $$;

-- readers: one schema each; table-level SELECT comes from dbt's grants config on every build.
grant usage on schema marts to analyst;
grant usage on schema research to researcher;
-- Tables dbt creates later are readable at once (dbt's grants then re-apply the same on each build,
-- and revoke anything else): a reader never meets a freshly rebuilt table without its grant.
alter default privileges for role transformer in schema marts grant select on tables to analyst;
alter default privileges for role transformer in schema research grant select on tables to researcher;
-- No usage on the schemas between raw and the marts for anyone but their owner (transformer).
revoke all on schema staging, intermediate, snapshots from public;

-- transformer reads which export records were rejected: an assessment with one in the export
-- that wins for it is incomplete (dbt int_assessments).
grant usage on schema quarantine to transformer;
grant select on quarantine.rejected_rows to transformer;

-- The database itself: PUBLIC (every role of the server) loses CONNECT and TEMP on it; the four
-- roles get what they need (a login that is a member of loader/transformer connects through it).
do $$
begin
    execute format('revoke connect, temporary on database %I from public', current_database());
    execute format(
        'grant connect on database %I to loader, transformer, analyst, researcher', current_database()
    );
    -- dbt's incremental models and GX's batches use temporary tables
    execute format('grant temporary on database %I to loader, transformer', current_database());
end $$;

-- Readers are people and BI tools: bounded queries and connections (docs/ACCESS.md). Roles are
-- server-wide and bootstraps of several databases may run at once: change a role only when it
-- differs (an ALTER ROLE of the same role from two sessions fails with "tuple concurrently updated").
do $$
declare
    r record;
    setting text;
begin
    for r in
        select * from (values ('analyst', 20, '5min'), ('researcher', 10, '15min')) as v (role, connections, timeout)
    loop
        if (select rolconnlimit from pg_roles where rolname = r.role) <> r.connections then
            execute format('alter role %I connection limit %s', r.role, r.connections);
        end if;
        foreach setting in array array[
            'statement_timeout=' || r.timeout, 'idle_in_transaction_session_timeout=10min'
        ] loop
            if not exists (
                select 1 from pg_db_role_setting as s
                where s.setrole = (select oid from pg_roles where rolname = r.role) and s.setdatabase = 0
                  and setting = any(s.setconfig)
            ) then
                execute format(
                    'alter role %I set %s = %L', r.role, split_part(setting, '=', 1), split_part(setting, '=', 2)
                );
            end if;
        end loop;
    end loop;
end $$;

-- public_reporting: the transparency page's two tables, built by dbt (owner transformer) and
-- readable by every login (dbt grants SELECT on them to PUBLIC on each build).
create schema if not exists public_reporting authorization transformer;
grant usage on schema public_reporting to public;
