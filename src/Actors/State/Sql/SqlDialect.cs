using System.Data.Common;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace WhaleWall.Actors.State.Sql;

/// <summary>The tables the state lives in, per database. They are the tables (names, columns,
/// indexes) that Akka.Persistence.Sql 1.5 made with its <c>sqlite</c> and <c>postgresql</c>
/// mappings, which WhaleWall used before it had a journal of its own: a database written by
/// either reads in the other, so an upgrade (or a step back) keeps every container's state.</summary>
public sealed record SqlDialect(
    string Name,
    Func<string, DbConnection> Connect,
    string JournalTable,
    string SnapshotTable,
    string TimestampColumn,
    string[] JournalSchema,
    string[] SnapshotSchema)
{
    public static readonly SqlDialect Sqlite = new(
        "sqlite",
        cs => new SqliteConnection(cs),
        "event_journal",
        "snapshot",
        "timestamp",
        [
            """
            CREATE TABLE IF NOT EXISTS [event_journal]
            (
            	[ordering]       INTEGER        NOT NULL PRIMARY KEY AUTOINCREMENT,
            	[timestamp]      INTEGER        NOT NULL,
            	[is_deleted]     Bit            NOT NULL,
            	[persistence_id] NVarChar(255)  NOT NULL,
            	[sequence_nr]    INTEGER        NOT NULL,
            	[payload]        VarBinary      NOT NULL,
            	[manifest]       NVarChar(500)      NULL,
            	[serializer_id]  INTEGER            NULL
            )
            """,
            "CREATE UNIQUE INDEX IF NOT EXISTS event_journal_uq ON event_journal (persistence_id, sequence_nr)",
            "CREATE INDEX IF NOT EXISTS event_journal_timestamp_idx ON event_journal (timestamp)",
            "CREATE INDEX IF NOT EXISTS event_journal_sequence_nr_idx ON event_journal (sequence_nr)",
            """
            CREATE TABLE IF NOT EXISTS [tags]
            (
            	[ordering_id]    INTEGER       NOT NULL,
            	[tag]            NVarChar(64)  NOT NULL,
            	[sequence_nr]    INTEGER       NOT NULL,
            	[persistence_id] NVarChar(255) NOT NULL,

            	CONSTRAINT [PK_tags] PRIMARY KEY ([ordering_id], [tag])
            )
            """,
            "CREATE INDEX IF NOT EXISTS tags_persistence_id_sequence_nr_idx ON tags (persistence_id, sequence_nr)",
            "CREATE INDEX IF NOT EXISTS tags_tag_idx ON tags (tag)",
        ],
        [
            """
            CREATE TABLE IF NOT EXISTS [snapshot]
            (
            	[persistence_id] NVarChar(255) NOT NULL,
            	[sequence_nr]    INTEGER       NOT NULL,
            	[created_at]     INTEGER       NOT NULL,
            	[payload]        VarBinary         NULL,
            	[manifest]       NVarChar(500)     NULL,
            	[serializer_id]  INTEGER           NULL,

            	CONSTRAINT [PK_snapshot] PRIMARY KEY ([persistence_id], [sequence_nr])
            )
            """,
            "CREATE INDEX IF NOT EXISTS snapshot_sequence_nr_idx ON snapshot (sequence_nr)",
            "CREATE INDEX IF NOT EXISTS snapshot_created_at_idx ON snapshot (created_at)",
        ])
    {
        // one fsync per commit instead of the rollback journal's several (the journal file made,
        // synced, the database synced, the journal deleted); kept in the file: set once
        FirstUse = ["PRAGMA journal_mode=WAL"],
    };

    public static readonly SqlDialect Postgres = new(
        "postgresql",
        cs => new NpgsqlConnection(cs),
        "event_journal",
        "snapshot_store",
        "created_at",
        [
            """
            CREATE TABLE IF NOT EXISTS event_journal (
                ordering bigint GENERATED ALWAYS AS IDENTITY,
                created_at bigint NOT NULL,
                is_deleted boolean NOT NULL,
                persistence_id text NOT NULL,
                sequence_nr bigint NOT NULL,
                payload bytea NOT NULL,
                manifest text,
                serializer_id integer,
                CONSTRAINT "PK_event_journal" PRIMARY KEY (ordering),
                CONSTRAINT event_journal_uq UNIQUE (persistence_id, sequence_nr)
            )
            """,
            "CREATE INDEX IF NOT EXISTS event_journal_created_at_idx ON event_journal (created_at)",
            "CREATE INDEX IF NOT EXISTS event_journal_sequence_nr_idx ON event_journal (sequence_nr)",
            """
            CREATE TABLE IF NOT EXISTS tags (
                ordering_id bigint NOT NULL,
                tag text NOT NULL,
                sequence_nr bigint NOT NULL,
                persistence_id text NOT NULL,
                CONSTRAINT "PK_tags" PRIMARY KEY (ordering_id, tag)
            )
            """,
            "CREATE INDEX IF NOT EXISTS tags_persistence_id_sequence_nr_idx ON tags (persistence_id, sequence_nr)",
            "CREATE INDEX IF NOT EXISTS tags_tag_idx ON tags (tag)",
        ],
        [
            """
            CREATE TABLE IF NOT EXISTS snapshot_store (
                persistence_id text NOT NULL,
                sequence_nr bigint NOT NULL,
                created_at bigint NOT NULL,
                payload bytea,
                manifest text,
                serializer_id integer,
                CONSTRAINT "PK_snapshot_store" PRIMARY KEY (persistence_id, sequence_nr)
            )
            """,
            "CREATE INDEX IF NOT EXISTS snapshot_store_created_at_idx ON snapshot_store (created_at)",
            "CREATE INDEX IF NOT EXISTS snapshot_store_sequence_nr_idx ON snapshot_store (sequence_nr)",
        ]);

    /// <summary>Statements run once per process, before the first use of the database.</summary>
    public IReadOnlyList<string> FirstUse { get; init; } = [];

    public static SqlDialect Named(string name) => name switch
    {
        "sqlite" => Sqlite,
        "postgresql" => Postgres,
        _ => throw new ArgumentException($"unknown state database dialect \"{name}\" (sqlite or postgresql)"),
    };
}
