-- The tables of the Python SQLAlchemySession (IF NOT EXISTS: tables it made
-- already are kept as they are), and the index lakesession reads them by.
CREATE TABLE IF NOT EXISTS agent_sessions (
    session_id VARCHAR NOT NULL PRIMARY KEY,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

--bun:split

CREATE TABLE IF NOT EXISTS agent_messages (
    id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    session_id VARCHAR NOT NULL REFERENCES agent_sessions (session_id) ON DELETE CASCADE,
    message_data TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

--bun:split

-- Reads in (created_at, id) order, newest first or oldest first, never sort.
CREATE INDEX IF NOT EXISTS idx_agent_messages_session_order
    ON agent_messages (session_id, created_at, id);

--bun:split

-- Listing sessions by last update and deleting old ones.
CREATE INDEX IF NOT EXISTS idx_agent_sessions_updated
    ON agent_sessions (updated_at, session_id);
