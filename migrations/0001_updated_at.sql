-- Real updated_at columns (0000 mapped updatedAt onto created_at, so every update rewrote created_at).
-- SQLite cannot ADD a column whose default is an expression, so the column gets a constant '' default here
-- (drizzle always writes the clock on insert and update) and existing rows are backfilled from created_at.
DROP INDEX `api_keys_project`;--> statement-breakpoint
ALTER TABLE `api_keys` ADD `updated_at` text DEFAULT '' NOT NULL;--> statement-breakpoint
CREATE INDEX `api_keys_project` ON `api_keys` (`project_id`,`created_at`,`id`);--> statement-breakpoint
DROP INDEX `backbones_project`;--> statement-breakpoint
ALTER TABLE `backbones` ADD `updated_at` text DEFAULT '' NOT NULL;--> statement-breakpoint
CREATE INDEX `backbones_project` ON `backbones` (`project_id`,`created_at`,`id`);--> statement-breakpoint
DROP INDEX `datasets_project`;--> statement-breakpoint
ALTER TABLE `datasets` ADD `updated_at` text DEFAULT '' NOT NULL;--> statement-breakpoint
CREATE INDEX `datasets_project` ON `datasets` (`project_id`,`created_at`,`id`);--> statement-breakpoint
DROP INDEX `jobs_project`;--> statement-breakpoint
ALTER TABLE `jobs` ADD `updated_at` text DEFAULT '' NOT NULL;--> statement-breakpoint
CREATE INDEX `jobs_project` ON `jobs` (`project_id`,`created_at`,`id`);--> statement-breakpoint
DROP INDEX `models_project`;--> statement-breakpoint
ALTER TABLE `models` ADD `updated_at` text DEFAULT '' NOT NULL;--> statement-breakpoint
CREATE INDEX `models_project` ON `models` (`project_id`,`created_at`,`id`);--> statement-breakpoint
ALTER TABLE `aliases` ADD `updated_at` text DEFAULT '' NOT NULL;--> statement-breakpoint
ALTER TABLE `ingests` ADD `updated_at` text DEFAULT '' NOT NULL;--> statement-breakpoint
ALTER TABLE `projects` ADD `updated_at` text DEFAULT '' NOT NULL;--> statement-breakpoint
ALTER TABLE `uploads` ADD `updated_at` text DEFAULT '' NOT NULL;--> statement-breakpoint
UPDATE `aliases` SET `updated_at` = `created_at`;--> statement-breakpoint
UPDATE `api_keys` SET `updated_at` = `created_at`;--> statement-breakpoint
UPDATE `backbones` SET `updated_at` = `created_at`;--> statement-breakpoint
UPDATE `datasets` SET `updated_at` = `created_at`;--> statement-breakpoint
UPDATE `ingests` SET `updated_at` = `created_at`;--> statement-breakpoint
UPDATE `jobs` SET `updated_at` = `created_at`;--> statement-breakpoint
UPDATE `models` SET `updated_at` = `created_at`;--> statement-breakpoint
UPDATE `projects` SET `updated_at` = `created_at`;--> statement-breakpoint
UPDATE `uploads` SET `updated_at` = `created_at`;--> statement-breakpoint
-- An alias's created_at held its last switch; its first switch in the history is when it was created.
UPDATE `aliases` SET `created_at` = coalesce((SELECT min(h.`created_at`) FROM `alias_history` h WHERE h.`project_id` = `aliases`.`project_id` AND h.`name` = `aliases`.`name`), `created_at`);
