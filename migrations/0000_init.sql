CREATE TABLE `alias_history` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`project_id` text NOT NULL,
	`name` text NOT NULL,
	`model_id` text NOT NULL,
	`previous_model_id` text,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL
);
--> statement-breakpoint
CREATE INDEX `alias_history_name` ON `alias_history` (`project_id`,`name`,`id`);--> statement-breakpoint
CREATE TABLE `aliases` (
	`project_id` text NOT NULL,
	`name` text NOT NULL,
	`model_id` text NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	PRIMARY KEY(`project_id`, `name`)
);
--> statement-breakpoint
CREATE TABLE `api_keys` (
	`id` text PRIMARY KEY NOT NULL,
	`project_id` text NOT NULL,
	`name` text NOT NULL,
	`secret_hash` text NOT NULL,
	`secret_prefix` text NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	`last_used_at` text,
	`revoked_at` text
);
--> statement-breakpoint
CREATE UNIQUE INDEX `api_keys_secret_hash` ON `api_keys` (`secret_hash`);--> statement-breakpoint
CREATE INDEX `api_keys_project` ON `api_keys` (`project_id`);--> statement-breakpoint
CREATE TABLE `backbones` (
	`id` text PRIMARY KEY NOT NULL,
	`project_id` text NOT NULL,
	`name` text NOT NULL,
	`spec` text NOT NULL,
	`object_prefix` text NOT NULL,
	`format` text NOT NULL,
	`param_count` integer NOT NULL,
	`weight_bytes` integer NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL
);
--> statement-breakpoint
CREATE INDEX `backbones_project` ON `backbones` (`project_id`);--> statement-breakpoint
CREATE TABLE `dataset_images` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`dataset_id` text NOT NULL,
	`label` text NOT NULL,
	`filename` text NOT NULL,
	`split` text DEFAULT 'auto' NOT NULL,
	`sha256` text NOT NULL,
	`bytes` integer NOT NULL,
	`format` text NOT NULL,
	`width` integer NOT NULL,
	`height` integer NOT NULL,
	`added_version` integer NOT NULL,
	`removed_version` integer
);
--> statement-breakpoint
CREATE UNIQUE INDEX `dataset_images_entry` ON `dataset_images` (`dataset_id`,`split`,`label`,`filename`,`added_version`);--> statement-breakpoint
CREATE INDEX `dataset_images_live` ON `dataset_images` (`dataset_id`,`removed_version`);--> statement-breakpoint
CREATE INDEX `dataset_images_sha` ON `dataset_images` (`dataset_id`,`sha256`);--> statement-breakpoint
CREATE TABLE `dataset_rejections` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`dataset_id` text NOT NULL,
	`ingest_id` text,
	`path` text NOT NULL,
	`code` text NOT NULL,
	`message` text NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL
);
--> statement-breakpoint
CREATE INDEX `dataset_rejections_dataset` ON `dataset_rejections` (`dataset_id`);--> statement-breakpoint
CREATE UNIQUE INDEX `dataset_rejections_entry` ON `dataset_rejections` (`dataset_id`,`ingest_id`,`path`);--> statement-breakpoint
CREATE TABLE `datasets` (
	`id` text PRIMARY KEY NOT NULL,
	`project_id` text NOT NULL,
	`name` text NOT NULL,
	`status` text DEFAULT 'empty' NOT NULL,
	`version` integer DEFAULT 1 NOT NULL,
	`frozen_version` integer DEFAULT 0 NOT NULL,
	`error` text,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL
);
--> statement-breakpoint
CREATE INDEX `datasets_project` ON `datasets` (`project_id`);--> statement-breakpoint
CREATE TABLE `ingests` (
	`id` text PRIMARY KEY NOT NULL,
	`dataset_id` text NOT NULL,
	`project_id` text NOT NULL,
	`object_key` text NOT NULL,
	`status` text DEFAULT 'queued' NOT NULL,
	`cursor` integer DEFAULT 0 NOT NULL,
	`total` integer,
	`accepted` integer DEFAULT 0 NOT NULL,
	`rejected` integer DEFAULT 0 NOT NULL,
	`uncompressed_bytes` integer DEFAULT 0 NOT NULL,
	`error` text,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL
);
--> statement-breakpoint
CREATE INDEX `ingests_dataset` ON `ingests` (`dataset_id`);--> statement-breakpoint
CREATE TABLE `job_events` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`job_id` text NOT NULL,
	`type` text NOT NULL,
	`data` text NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL
);
--> statement-breakpoint
CREATE INDEX `job_events_job` ON `job_events` (`job_id`,`id`);--> statement-breakpoint
CREATE TABLE `jobs` (
	`id` text PRIMARY KEY NOT NULL,
	`project_id` text NOT NULL,
	`dataset_id` text NOT NULL,
	`dataset_version` integer NOT NULL,
	`backbone` text NOT NULL,
	`config` text NOT NULL,
	`status` text DEFAULT 'queued' NOT NULL,
	`attempt` integer DEFAULT 0 NOT NULL,
	`max_attempts` integer DEFAULT 3 NOT NULL,
	`run_after` text NOT NULL,
	`runner_id` text,
	`lease_token` text,
	`lease_expires_at` text,
	`cancel_requested` integer DEFAULT false NOT NULL,
	`progress_phase` text,
	`progress_done` integer DEFAULT 0 NOT NULL,
	`progress_total` integer DEFAULT 0 NOT NULL,
	`metrics` text,
	`skipped` text,
	`model_id` text,
	`error` text,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	`started_at` text,
	`finished_at` text
);
--> statement-breakpoint
CREATE INDEX `jobs_project` ON `jobs` (`project_id`);--> statement-breakpoint
CREATE INDEX `jobs_queue` ON `jobs` (`status`,`run_after`);--> statement-breakpoint
CREATE TABLE `models` (
	`id` text PRIMARY KEY NOT NULL,
	`project_id` text NOT NULL,
	`job_id` text NOT NULL,
	`dataset_id` text NOT NULL,
	`dataset_version` integer NOT NULL,
	`backbone` text NOT NULL,
	`labels` text NOT NULL,
	`metrics` text NOT NULL,
	`object_prefix` text NOT NULL,
	`head_bytes` integer NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL
);
--> statement-breakpoint
CREATE INDEX `models_project` ON `models` (`project_id`);--> statement-breakpoint
CREATE UNIQUE INDEX `models_job` ON `models` (`job_id`);--> statement-breakpoint
CREATE TABLE `projects` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL
);
--> statement-breakpoint
CREATE TABLE `upload_parts` (
	`upload_id` text NOT NULL,
	`part_number` integer NOT NULL,
	`etag` text NOT NULL,
	`bytes` integer NOT NULL,
	PRIMARY KEY(`upload_id`, `part_number`)
);
--> statement-breakpoint
CREATE TABLE `uploads` (
	`id` text PRIMARY KEY NOT NULL,
	`dataset_id` text NOT NULL,
	`project_id` text NOT NULL,
	`filename` text NOT NULL,
	`object_key` text NOT NULL,
	`r2_upload_id` text NOT NULL,
	`part_size` integer NOT NULL,
	`status` text DEFAULT 'open' NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL
);
