-- Registry notifications already accepted, by event id: a delivery seen
-- again within the replay window is refused (see AcceptHookEvents).
CREATE TABLE hook_deliveries (
    source      TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (source, event_id)
);
CREATE INDEX hook_deliveries_at ON hook_deliveries (received_at);
