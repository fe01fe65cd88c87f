CREATE TABLE `deletions` (
	`id` text PRIMARY KEY NOT NULL,
	`project_id` text NOT NULL,
	`kind` text NOT NULL,
	`target_id` text NOT NULL,
	`status` text DEFAULT 'pending' NOT NULL,
	`cursor` integer DEFAULT 0 NOT NULL,
	`rows_deleted` integer DEFAULT 0 NOT NULL,
	`objects_deleted` integer DEFAULT 0 NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	`updated_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL
);
--> statement-breakpoint
CREATE INDEX `deletions_pending` ON `deletions` (`status`,`updated_at`);--> statement-breakpoint
CREATE TABLE `event_streams` (
	`id` text PRIMARY KEY NOT NULL,
	`key_id` text NOT NULL,
	`job_id` text NOT NULL,
	`expires_at` text NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL
);
--> statement-breakpoint
CREATE INDEX `event_streams_key` ON `event_streams` (`key_id`,`expires_at`);--> statement-breakpoint
CREATE INDEX `ingests_active` ON `ingests` (`status`,`updated_at`);--> statement-breakpoint
CREATE INDEX `job_events_created` ON `job_events` (`created_at`);--> statement-breakpoint
CREATE INDEX `uploads_open` ON `uploads` (`status`,`updated_at`);