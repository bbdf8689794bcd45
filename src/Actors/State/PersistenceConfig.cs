namespace WhaleWall.Actors.State;

/// <summary>Where the state lives: a SQLite file in <paramref name="DataDir"/> (the default)
/// or a PostgreSQL server (<paramref name="Db"/> is its connection string).</summary>
public sealed record StateOptions(string Db, string DataDir, string Node)
{
    public bool IsSqlite => Db.Equals("sqlite", StringComparison.OrdinalIgnoreCase);
    public string SqliteFile => Path.Combine(DataDir, "whalewall.db");
}

/// <summary>Akka.Persistence configuration for <see cref="StateOptions"/>: WhaleWall's own
/// journal and snapshot store (<see cref="Sql.SqlJournal"/>, <see cref="Sql.SqlSnapshotStore"/>)
/// on the tables Akka.Persistence.Sql used to make.</summary>
public static class PersistenceConfig
{
    public static Akka.Configuration.Config Config(StateOptions options) =>
        Akka.Configuration.ConfigurationFactory.ParseString(Hocon(options));

    public static string Hocon(StateOptions options)
    {
        string connection, dialect;
        if (options.IsSqlite)
        {
            Directory.CreateDirectory(options.DataDir);
            connection = $"Data Source={options.SqliteFile};Pooling=True";
            dialect = Sql.SqlDialect.Sqlite.Name;
        }
        else
        {
            connection = options.Db;
            dialect = Sql.SqlDialect.Postgres.Name;
        }
        var plugin = $$"""
            connection-string = {{Quote(connection)}}
            dialect = {{dialect}}
            """;
        return $$"""
            akka.persistence.journal.plugin = "akka.persistence.journal.whalewall"
            akka.persistence.journal.whalewall { class = "{{Name<Sql.SqlJournal>()}}", {{plugin}} }
            akka.persistence.snapshot-store.plugin = "akka.persistence.snapshot-store.whalewall"
            akka.persistence.snapshot-store.whalewall { class = "{{Name<Sql.SqlSnapshotStore>()}}", {{plugin}} }
            akka.actor.serializers.whalewall-state = "{{Name<StateSerializer>()}}"
            akka.actor.serialization-bindings {
              "{{Name<IStoredEvent>()}}" = whalewall-state
              "{{Name<ContainerStoreState>()}}" = whalewall-state
            }
            akka.actor.serialization-identifiers {
              "{{Name<StateSerializer>()}}" = {{StateSerializer.Id}}
            }
            """;
    }

    private static string Name<T>() => $"{typeof(T).FullName}, {typeof(T).Assembly.GetName().Name}";

    private static string Quote(string s) => "\"" + s.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";
}
