ALTER TABLE `webhook_deliveries` ADD `next_attempt_at` text;--> statement-breakpoint
CREATE INDEX `webhook_deliveries_pending` ON `webhook_deliveries` (`status`,`next_attempt_at`);--> statement-breakpoint
-- Pending deliveries from before this column: due since their last change (the sweep resumes them if their message died).
UPDATE `webhook_deliveries` SET `next_attempt_at` = `updated_at` WHERE `status` = 'pending';
