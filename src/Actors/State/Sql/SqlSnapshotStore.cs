using Akka.Configuration;
using Akka.Persistence;
using Akka.Persistence.Snapshot;

namespace WhaleWall.Actors.State.Sql;

/// <summary>Snapshots in SQLite or PostgreSQL (<see cref="SqlDialect"/>): one row per
/// persistence id and sequence number; saving the same one again replaces it.</summary>
public sealed class SqlSnapshotStore : SnapshotStore
{
    private readonly SqlDatabase db;
    private readonly Akka.Serialization.Serialization serialization = Context.System.Serialization;
    private readonly string table;

    public SqlSnapshotStore(Config config)
    {
        db = SqlDatabase.For(config, d => d.SnapshotSchema);
        table = db.Dialect.SnapshotTable;
    }

    private const string Matching =
        "persistence_id = @pid AND sequence_nr <= @maxSeq AND created_at <= @maxTime AND sequence_nr >= @minSeq AND created_at >= @minTime";

    private static (string, object?)[] Criteria(string persistenceId, SnapshotSelectionCriteria c) =>
    [
        ("pid", persistenceId), ("maxSeq", c.MaxSequenceNr), ("maxTime", c.MaxTimeStamp.Ticks),
        ("minSeq", c.MinSequenceNr), ("minTime", (c.MinTimestamp ?? DateTime.MinValue).Ticks),
    ];

    protected override async Task<SelectedSnapshot?> LoadAsync(string persistenceId, SnapshotSelectionCriteria criteria, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        await using var select = SqlDatabase.Command(connection, null,
            $"SELECT sequence_nr, created_at, payload, manifest, serializer_id FROM {table} WHERE {Matching} ORDER BY sequence_nr DESC LIMIT 1",
            Criteria(persistenceId, criteria));
        await using var reader = await select.ExecuteReaderAsync(ct);
        if (!await reader.ReadAsync(ct)) return null;
        var seq = reader.GetInt64(0);
        var (snapshot, _) = SerializedPayload.Read(serialization, reader, bytes: 2, manifest: 3, serializer: 4, $"snapshot {persistenceId} #{seq}");
        return new SelectedSnapshot(new SnapshotMetadata(persistenceId, seq, new DateTime(reader.GetInt64(1), DateTimeKind.Utc)), snapshot);
    }

    protected override async Task SaveAsync(SnapshotMetadata metadata, object snapshot, CancellationToken ct)
    {
        var row = SerializedPayload.Of(serialization, snapshot, metadata.PersistenceId, metadata.SequenceNr);
        await using var connection = await db.OpenAsync(ct);
        await using var upsert = SqlDatabase.Command(connection, null,
            $"INSERT INTO {table} (persistence_id, sequence_nr, created_at, payload, manifest, serializer_id) " +
            "VALUES (@pid, @seq, @created, @payload, @manifest, @serializer) ON CONFLICT (persistence_id, sequence_nr) DO UPDATE SET " +
            "created_at = excluded.created_at, payload = excluded.payload, manifest = excluded.manifest, serializer_id = excluded.serializer_id",
            ("pid", row.PersistenceId), ("seq", row.SequenceNr), ("created", metadata.Timestamp.Ticks),
            ("payload", row.Bytes), ("manifest", row.Manifest), ("serializer", row.SerializerId));
        await upsert.ExecuteNonQueryAsync(ct);
    }

    protected override async Task DeleteAsync(SnapshotMetadata metadata, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        await using var delete = SqlDatabase.Command(connection, null,
            $"DELETE FROM {table} WHERE persistence_id = @pid AND sequence_nr = @seq",
            ("pid", metadata.PersistenceId), ("seq", metadata.SequenceNr));
        await delete.ExecuteNonQueryAsync(ct);
    }

    protected override async Task DeleteAsync(string persistenceId, SnapshotSelectionCriteria criteria, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        await using var delete = SqlDatabase.Command(connection, null, $"DELETE FROM {table} WHERE {Matching}", Criteria(persistenceId, criteria));
        await delete.ExecuteNonQueryAsync(ct);
    }
}
