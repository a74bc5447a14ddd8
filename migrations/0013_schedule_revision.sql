-- A scheduled publish names the revision it publishes: the draft as it was when the publish
-- was scheduled. An edit saved after that stays a draft (content::editing::publish_revision).
-- NULL for unpublishes and for schedules made before this migration (they publish whatever
-- draft is pending when they run, as they did).
ALTER TABLE content_schedules ADD COLUMN revision_id UUID REFERENCES content_revisions (id);
