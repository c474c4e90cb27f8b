"""Ordered, named schema migrations of the lineage store.

Append new migrations at the end; never edit one that has shipped.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_initial",
        """
        CREATE TABLE datasets (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            created_at TEXT NOT NULL
        );
        CREATE TABLE dataset_versions (
            id INTEGER PRIMARY KEY,
            dataset_id INTEGER NOT NULL REFERENCES datasets(id),
            version INTEGER NOT NULL,
            content_hash TEXT NOT NULL,
            artifact_hash TEXT NOT NULL,
            source TEXT NOT NULL,
            n_rows INTEGER NOT NULL,
            n_cols INTEGER NOT NULL,
            schema_json TEXT NOT NULL,
            target TEXT,
            validation_json TEXT NOT NULL,
            parent_id INTEGER REFERENCES dataset_versions(id),
            created_at TEXT NOT NULL,
            UNIQUE (dataset_id, version),
            UNIQUE (dataset_id, content_hash)
        );
        CREATE TABLE experiments (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            status TEXT NOT NULL,
            dataset_version_id INTEGER REFERENCES dataset_versions(id),
            metric TEXT NOT NULL,
            mode TEXT NOT NULL,
            num_samples INTEGER NOT NULL,
            search_space_json TEXT NOT NULL,
            search_alg TEXT NOT NULL,
            scheduler TEXT NOT NULL,
            seed INTEGER,
            code_version_json TEXT NOT NULL,
            packages_json TEXT NOT NULL,
            best_trial_id TEXT,
            error TEXT,
            started_at TEXT NOT NULL,
            ended_at TEXT
        );
        CREATE TABLE trials (
            id INTEGER PRIMARY KEY,
            experiment_id INTEGER NOT NULL REFERENCES experiments(id),
            trial_id TEXT NOT NULL,
            config_json TEXT NOT NULL,
            status TEXT NOT NULL,
            metrics_json TEXT NOT NULL DEFAULT '{}',
            error TEXT,
            started_at TEXT NOT NULL,
            ended_at TEXT,
            duration_s REAL,
            UNIQUE (experiment_id, trial_id)
        );
        CREATE TABLE trial_metrics (
            trial_pk INTEGER NOT NULL REFERENCES trials(id),
            step INTEGER NOT NULL,
            name TEXT NOT NULL,
            value REAL,
            PRIMARY KEY (trial_pk, step, name)
        );
        CREATE TABLE models (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            task TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE TABLE model_versions (
            id INTEGER PRIMARY KEY,
            model_id INTEGER NOT NULL REFERENCES models(id),
            version INTEGER NOT NULL,
            artifact_hash TEXT NOT NULL,
            experiment_id INTEGER REFERENCES experiments(id),
            trial_id TEXT,
            dataset_version_id INTEGER REFERENCES dataset_versions(id),
            params_json TEXT NOT NULL,
            metrics_json TEXT NOT NULL,
            signature_json TEXT NOT NULL,
            created_at TEXT NOT NULL,
            UNIQUE (model_id, version)
        );
        CREATE TABLE aliases (
            model_id INTEGER NOT NULL REFERENCES models(id),
            alias TEXT NOT NULL,
            model_version_id INTEGER NOT NULL REFERENCES model_versions(id),
            PRIMARY KEY (model_id, alias)
        );
        CREATE TABLE alias_history (
            id INTEGER PRIMARY KEY,
            model_id INTEGER NOT NULL REFERENCES models(id),
            alias TEXT NOT NULL,
            model_version_id INTEGER REFERENCES model_versions(id),
            previous_version_id INTEGER REFERENCES model_versions(id),
            actor TEXT NOT NULL,
            reason TEXT NOT NULL,
            at TEXT NOT NULL
        );
        CREATE TABLE deployments (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            model_id INTEGER NOT NULL REFERENCES models(id),
            route_prefix TEXT NOT NULL,
            status TEXT NOT NULL,
            weights_json TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE traffic_changes (
            id INTEGER PRIMARY KEY,
            deployment_id INTEGER NOT NULL REFERENCES deployments(id),
            weights_json TEXT NOT NULL,
            actor TEXT NOT NULL,
            reason TEXT NOT NULL,
            at TEXT NOT NULL
        );
        CREATE TABLE request_logs (
            id INTEGER PRIMARY KEY,
            request_id TEXT NOT NULL UNIQUE,
            deployment_id INTEGER NOT NULL REFERENCES deployments(id),
            model_version_id INTEGER REFERENCES model_versions(id),
            features_json TEXT NOT NULL,
            prediction_json TEXT,
            latency_ms REAL NOT NULL,
            status_code INTEGER NOT NULL,
            error TEXT,
            at TEXT NOT NULL
        );
        CREATE INDEX request_logs_by_deployment ON request_logs (deployment_id, id);
        CREATE TABLE feedback (
            request_id TEXT PRIMARY KEY REFERENCES request_logs(request_id),
            label_json TEXT NOT NULL,
            at TEXT NOT NULL
        );
        CREATE TABLE monitors (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            deployment_id INTEGER NOT NULL REFERENCES deployments(id),
            kind TEXT NOT NULL,
            reference_dataset_version_id INTEGER NOT NULL REFERENCES dataset_versions(id),
            config_json TEXT NOT NULL,
            last_request_log_id INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL
        );
        CREATE TABLE drift_results (
            id INTEGER PRIMARY KEY,
            monitor_id INTEGER NOT NULL REFERENCES monitors(id),
            first_request_log_id INTEGER NOT NULL,
            last_request_log_id INTEGER NOT NULL,
            n INTEGER NOT NULL,
            is_drift INTEGER NOT NULL,
            score REAL,
            threshold REAL NOT NULL,
            detail_json TEXT NOT NULL,
            at TEXT NOT NULL
        );
        CREATE TABLE retrain_jobs (
            id INTEGER PRIMARY KEY,
            drift_result_id INTEGER REFERENCES drift_results(id),
            status TEXT NOT NULL,
            new_dataset_version_id INTEGER REFERENCES dataset_versions(id),
            experiment_id INTEGER REFERENCES experiments(id),
            challenger_version_id INTEGER REFERENCES model_versions(id),
            decision TEXT,
            detail_json TEXT NOT NULL DEFAULT '{}',
            started_at TEXT NOT NULL,
            ended_at TEXT
        );
        CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            entity_type TEXT NOT NULL,
            entity_id INTEGER,
            detail_json TEXT NOT NULL,
            at TEXT NOT NULL
        );
        CREATE TABLE lineage_edges (
            id INTEGER PRIMARY KEY,
            src_type TEXT NOT NULL,
            src_id INTEGER NOT NULL,
            relation TEXT NOT NULL,
            dst_type TEXT NOT NULL,
            dst_id INTEGER NOT NULL,
            at TEXT NOT NULL,
            UNIQUE (src_type, src_id, relation, dst_type, dst_id)
        );
        CREATE INDEX lineage_edges_by_dst ON lineage_edges (dst_type, dst_id);
        """,
    ),
    (
        "0002_trial_placement",
        """
        ALTER TABLE trials ADD COLUMN resources_json TEXT;
        ALTER TABLE trials ADD COLUMN node TEXT;
        ALTER TABLE trials ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1;
        ALTER TABLE trials ADD COLUMN stopped_early INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE trials ADD COLUMN checkpoint_path TEXT;
        ALTER TABLE experiments ADD COLUMN tune_path TEXT;
        ALTER TABLE experiments ADD COLUMN resumes INTEGER NOT NULL DEFAULT 0;
        """,
    ),
    (
        "0003_serving_strategies",
        """
        ALTER TABLE traffic_changes ADD COLUMN kind TEXT NOT NULL DEFAULT 'set';
        ALTER TABLE traffic_changes ADD COLUMN detail_json TEXT NOT NULL DEFAULT '{}';
        CREATE INDEX traffic_changes_by_deployment_at ON traffic_changes (deployment_id, at);
        CREATE INDEX request_logs_by_version_at ON request_logs (deployment_id, model_version_id, at);
        CREATE TABLE shadow_logs (
            id INTEGER PRIMARY KEY,
            request_id TEXT NOT NULL UNIQUE,
            deployment_id INTEGER NOT NULL REFERENCES deployments(id),
            primary_version_id INTEGER REFERENCES model_versions(id),
            shadow_version_id INTEGER NOT NULL REFERENCES model_versions(id),
            primary_prediction_json TEXT,
            shadow_prediction_json TEXT,
            agree INTEGER,
            primary_latency_ms REAL,
            shadow_latency_ms REAL,
            error TEXT,
            at TEXT NOT NULL
        );
        CREATE INDEX shadow_logs_by_deployment ON shadow_logs (deployment_id, id);
        """,
    ),
    (
        "0004_monitoring_alerts",
        """
        ALTER TABLE monitors ADD COLUMN state_json TEXT NOT NULL DEFAULT '{}';
        CREATE INDEX drift_results_by_monitor ON drift_results (monitor_id, id);
        CREATE TABLE alerts (
            id INTEGER PRIMARY KEY,
            monitor_id INTEGER REFERENCES monitors(id),
            drift_result_id INTEGER REFERENCES drift_results(id),
            dedup_key TEXT NOT NULL,
            severity TEXT NOT NULL,
            title TEXT NOT NULL,
            detail_json TEXT NOT NULL DEFAULT '{}',
            count INTEGER NOT NULL DEFAULT 1,
            first_at TEXT NOT NULL,
            last_at TEXT NOT NULL,
            deliveries_json TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX alerts_by_key ON alerts (dedup_key, id);
        CREATE INDEX alerts_by_monitor ON alerts (monitor_id, id);
        """,
    ),
    (
        "0005_automation",
        """
        ALTER TABLE retrain_jobs ADD COLUMN event_key TEXT;
        ALTER TABLE retrain_jobs ADD COLUMN policy TEXT;
        ALTER TABLE retrain_jobs ADD COLUMN approval TEXT;
        ALTER TABLE retrain_jobs ADD COLUMN compute_s REAL NOT NULL DEFAULT 0;
        ALTER TABLE retrain_jobs ADD COLUMN runner TEXT;
        CREATE UNIQUE INDEX retrain_jobs_by_event ON retrain_jobs (event_key);
        CREATE INDEX retrain_jobs_by_policy ON retrain_jobs (policy, id);
        CREATE TABLE automation_policies (
            name TEXT PRIMARY KEY,
            config_json TEXT NOT NULL,
            enabled INTEGER NOT NULL DEFAULT 1,
            state_json TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE automation_state (
            key TEXT PRIMARY KEY,
            value_json TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE retrain_steps (
            id INTEGER PRIMARY KEY,
            job_id INTEGER NOT NULL REFERENCES retrain_jobs(id),
            step TEXT NOT NULL,
            status TEXT NOT NULL,
            detail_json TEXT NOT NULL DEFAULT '{}',
            at TEXT NOT NULL
        );
        CREATE INDEX retrain_steps_by_job ON retrain_steps (job_id, id);
        """,
    ),
    (
        "0006_retrain_ray_jobs",
        """
        ALTER TABLE retrain_jobs ADD COLUMN ray_job_id TEXT;
        CREATE INDEX retrain_jobs_by_ray_job ON retrain_jobs (ray_job_id);
        """,
    ),
    (
        "0007_dataset_sources",
        """
        ALTER TABLE dataset_versions ADD COLUMN source_spec_json TEXT NOT NULL DEFAULT '{}';
        ALTER TABLE dataset_versions ADD COLUMN source_state_json TEXT NOT NULL DEFAULT '{}';
        ALTER TABLE dataset_versions ADD COLUMN manifest_json TEXT NOT NULL DEFAULT '[]';
        """,
    ),
    (
        "0008_ingestion_schedules",
        """
        CREATE TABLE ingestion_schedules (
            name TEXT PRIMARY KEY,
            cron TEXT NOT NULL,
            source_spec_json TEXT NOT NULL,
            target TEXT,
            checks_json TEXT,
            enabled INTEGER NOT NULL DEFAULT 1,
            cursor TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE ingestion_runs (
            id INTEGER PRIMARY KEY,
            schedule TEXT NOT NULL REFERENCES ingestion_schedules(name),
            fire_time TEXT NOT NULL,
            status TEXT NOT NULL,
            runner TEXT,
            started_at TEXT NOT NULL,
            ended_at TEXT,
            dataset_version_id INTEGER REFERENCES dataset_versions(id),
            error TEXT,
            detail_json TEXT NOT NULL DEFAULT '{}'
        );
        CREATE UNIQUE INDEX ingestion_runs_by_fire ON ingestion_runs (schedule, fire_time);
        """,
    ),
    (
        "0009_evaluations",
        """
        CREATE TABLE trial_folds (
            experiment_id INTEGER NOT NULL REFERENCES experiments(id),
            trial_id TEXT NOT NULL,
            fold INTEGER NOT NULL,
            metrics_json TEXT NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (experiment_id, trial_id, fold)
        );
        CREATE TABLE model_evaluations (
            id INTEGER PRIMARY KEY,
            model_version_id INTEGER NOT NULL REFERENCES model_versions(id),
            holdout_version_id INTEGER REFERENCES dataset_versions(id),
            metrics_json TEXT NOT NULL,
            details_json TEXT NOT NULL DEFAULT '{}',
            fairness_json TEXT,
            cv_json TEXT,
            gate_json TEXT,
            report_artifact TEXT,
            created_at TEXT NOT NULL
        );
        CREATE INDEX model_evaluations_by_version ON model_evaluations (model_version_id, id);
        """,
    ),
    (
        # Tamper evidence: each entry carries the hash of the one before it (written by
        # Database.audit); entries cannot be changed once hashed, nor deleted. Entries written
        # before this migration have no hash until the first open chains them (the only update
        # the trigger lets through).
        "0010_audit_chain",
        """
        ALTER TABLE audit_log ADD COLUMN prev_hash TEXT;
        ALTER TABLE audit_log ADD COLUMN hash TEXT;
        CREATE TRIGGER audit_log_append_only_update BEFORE UPDATE ON audit_log
        WHEN OLD.hash IS NOT NULL
        BEGIN
            SELECT RAISE(ABORT, 'audit_log is append-only: an entry cannot be changed');
        END;
        CREATE TRIGGER audit_log_append_only_delete BEFORE DELETE ON audit_log
        BEGIN
            SELECT RAISE(ABORT, 'audit_log is append-only: an entry cannot be deleted');
        END;
        """,
    ),
    (
        # Who may do what: role grants and access settings (changed by an admin only, audited),
        # and serving API keys (stored as SHA-256 of the key; the name is what request rows record).
        "0011_access",
        """
        CREATE TABLE access_grants (
            user TEXT NOT NULL,
            role TEXT NOT NULL,
            granted_by TEXT NOT NULL,
            granted_at TEXT NOT NULL,
            PRIMARY KEY (user, role)
        );
        CREATE TABLE access_settings (
            key TEXT PRIMARY KEY,
            value_json TEXT NOT NULL,
            updated_by TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE api_keys (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            key_hash TEXT NOT NULL UNIQUE,
            scopes_json TEXT NOT NULL,
            deployment TEXT,
            created_by TEXT NOT NULL,
            created_at TEXT NOT NULL,
            revoked_at TEXT
        );
        ALTER TABLE request_logs ADD COLUMN api_key TEXT;
        """,
    ),
    (
        # Reproducibility: the environment a search ran in (Python, platform, lock and diff
        # artifacts, notebook cells) and the hash of the Tune state it may be resumed from.
        "0012_environment",
        """
        ALTER TABLE experiments ADD COLUMN environment_json TEXT NOT NULL DEFAULT '{}';
        ALTER TABLE experiments ADD COLUMN tune_state_hash TEXT;
        """,
    ),
    (
        # A registered version's row bound to its artifact: a digest over the row's identity and
        # artifact hash, so swapping artifact hashes between rows is detected on load.
        "0013_model_binding",
        """
        ALTER TABLE model_versions ADD COLUMN row_digest TEXT;
        """,
    ),
]
