using System.Collections.Immutable;
using Akka.Actor;
using Akka.Configuration;
using Akka.Persistence;
using Akka.Persistence.Journal;

namespace WhaleWall.Actors.State.Sql;

/// <summary>The event journal in SQLite or PostgreSQL (<see cref="SqlDialect"/>). One row per
/// event: its persistence id, sequence number, serializer id, manifest and bytes. Deleting up
/// to a sequence number removes the rows before the highest and marks that one deleted, so the
/// highest number survives a delete of everything.</summary>
public sealed class SqlJournal : AsyncWriteJournal
{
    private readonly SqlDatabase db;
    private readonly Akka.Serialization.Serialization serialization = Context.System.Serialization;
    private readonly string table;
    private readonly string timestamp;

    public SqlJournal(Config config)
    {
        db = SqlDatabase.For(config, d => d.JournalSchema);
        table = db.Dialect.JournalTable;
        timestamp = db.Dialect.TimestampColumn;
    }

    protected override async Task<IImmutableList<Exception?>> WriteMessagesAsync(IEnumerable<AtomicWrite> messages, CancellationToken ct)
    {
        // a write whose events cannot be serialized is rejected alone (nothing of it is stored)
        var writes = new List<SerializedPayload[]?>();
        var results = new List<Exception?>();
        foreach (var write in messages)
        {
            try
            {
                writes.Add([.. ((IImmutableList<IPersistentRepresentation>)write.Payload).Select(Serialize)]);
                results.Add(null);
            }
            catch (Exception e)
            {
                writes.Add(null);
                results.Add(e);
            }
        }

        await using var connection = await db.OpenAsync(ct);
        await using var transaction = await connection.BeginTransactionAsync(ct);
        await using var insert = SqlDatabase.Command(connection, transaction,
            $"INSERT INTO {table} ({timestamp}, is_deleted, persistence_id, sequence_nr, payload, manifest, serializer_id) " +
            "VALUES (@timestamp, @deleted, @pid, @seq, @payload, @manifest, @serializer)",
            ("timestamp", 0L), ("deleted", false), ("pid", ""), ("seq", 0L), ("payload", Array.Empty<byte>()), ("manifest", ""), ("serializer", 0));
        var now = DateTime.UtcNow.Ticks;
        foreach (var row in writes.Where(w => w is not null).SelectMany(w => w!))
        {
            insert.Parameters["timestamp"].Value = now;
            insert.Parameters["pid"].Value = row.PersistenceId;
            insert.Parameters["seq"].Value = row.SequenceNr;
            insert.Parameters["payload"].Value = row.Bytes;
            insert.Parameters["manifest"].Value = row.Manifest;
            insert.Parameters["serializer"].Value = row.SerializerId;
            await insert.ExecuteNonQueryAsync(ct);
        }
        await transaction.CommitAsync(ct);
        return results.Any(r => r is not null) ? results.ToImmutableList() : null!;
    }

    public override async Task ReplayMessagesAsync(IActorContext context, string persistenceId, long fromSequenceNr, long toSequenceNr, long max,
        Action<IPersistentRepresentation> recoveryCallback)
    {
        if (max <= 0 || toSequenceNr < fromSequenceNr) return;
        await using var connection = await db.OpenAsync(default);
        await using var select = SqlDatabase.Command(connection, null,
            $"SELECT sequence_nr, payload, manifest, serializer_id, {timestamp} FROM {table} " +
            "WHERE persistence_id = @pid AND sequence_nr >= @from AND sequence_nr <= @to AND is_deleted = @deleted ORDER BY sequence_nr LIMIT @max",
            ("pid", persistenceId), ("from", fromSequenceNr), ("to", toSequenceNr), ("deleted", false), ("max", max));
        await using var reader = await select.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            var seq = reader.GetInt64(0);
            var (payload, manifest) = SerializedPayload.Read(serialization, reader, bytes: 1, manifest: 2, serializer: 3, $"journal row {persistenceId} #{seq}");
            recoveryCallback(new Persistent(payload, seq, persistenceId, manifest, false, ActorRefs.NoSender, null, reader.GetInt64(4)));
        }
    }

    public override async Task<long> ReadHighestSequenceNrAsync(string persistenceId, long fromSequenceNr, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        await using var select = SqlDatabase.Command(connection, null,
            $"SELECT MAX(sequence_nr) FROM {table} WHERE persistence_id = @pid", ("pid", persistenceId));
        return await select.ExecuteScalarAsync(ct) is { } highest and not DBNull ? Convert.ToInt64(highest) : 0L;
    }

    protected override async Task DeleteMessagesToAsync(string persistenceId, long toSequenceNr, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        await using var transaction = await connection.BeginTransactionAsync(ct);
        await using (var mark = SqlDatabase.Command(connection, transaction,
                         $"UPDATE {table} SET is_deleted = @deleted WHERE persistence_id = @pid AND sequence_nr <= @to",
                         ("deleted", true), ("pid", persistenceId), ("to", toSequenceNr)))
            await mark.ExecuteNonQueryAsync(ct);
        await using (var delete = SqlDatabase.Command(connection, transaction,
                         $"DELETE FROM {table} WHERE persistence_id = @pid AND sequence_nr <= @to " +
                         $"AND sequence_nr < (SELECT MAX(sequence_nr) FROM {table} WHERE persistence_id = @pid)",
                         ("pid", persistenceId), ("to", toSequenceNr)))
            await delete.ExecuteNonQueryAsync(ct);
        await transaction.CommitAsync(ct);
    }

    private SerializedPayload Serialize(IPersistentRepresentation p) =>
        SerializedPayload.Of(serialization, p.Payload, p.PersistenceId, p.SequenceNr);
}

/// <summary>An event or snapshot as a row holds it.</summary>
public sealed record SerializedPayload(string PersistenceId, long SequenceNr, byte[] Bytes, string Manifest, int SerializerId)
{
    public static SerializedPayload Of(Akka.Serialization.Serialization serialization, object payload, string persistenceId, long sequenceNr)
    {
        var serializer = serialization.FindSerializerFor(payload);
        return new(persistenceId, sequenceNr, serializer.ToBinary(payload),
            Akka.Serialization.Serialization.ManifestFor(serializer, payload), serializer.Identifier);
    }

    /// <summary>A row's payload read back (its columns at the given positions), and its manifest.</summary>
    public static (object Payload, string Manifest) Read(Akka.Serialization.Serialization serialization, System.Data.Common.DbDataReader reader,
        int bytes, int manifest, int serializer, string what)
    {
        if (reader.IsDBNull(bytes) || reader.IsDBNull(serializer))
            throw new InvalidOperationException($"{what} has no payload or no serializer id");
        var name = reader.IsDBNull(manifest) ? "" : reader.GetString(manifest);
        return (serialization.Deserialize(reader.GetFieldValue<byte[]>(bytes), reader.GetInt32(serializer), name), name);
    }
}
