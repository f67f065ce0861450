-- Drops the tables and every stored conversation.
DROP TABLE IF EXISTS agent_messages;

--bun:split

DROP TABLE IF EXISTS agent_sessions;
