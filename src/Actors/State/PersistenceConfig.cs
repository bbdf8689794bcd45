namespace WhaleWall.Actors.State;

/// <summary>Where the state lives: a SQLite file in <paramref name="DataDir"/> (the default)
/// or a PostgreSQL server (<paramref name="Db"/> is its connection string).</summary>
public sealed record StateOptions(string Db, string DataDir, string Node)
{
    public bool IsSqlite => Db.Equals("sqlite", StringComparison.OrdinalIgnoreCase);
    public string SqliteFile => Path.Combine(DataDir, "whalewall.db");
}

/// <summary>Akka.Persistence.Sql configuration for <see cref="StateOptions"/>.</summary>
public static class PersistenceConfig
{
    public static Akka.Configuration.Config Config(StateOptions options) =>
        Akka.Configuration.ConfigurationFactory.ParseString(Hocon(options))
            .WithFallback(Akka.Persistence.Sql.SqlPersistence.DefaultConfiguration);

    /// <summary>WhaleWall's settings alone (without the plugin's defaults).</summary>
    public static string Hocon(StateOptions options)
    {
        string connection, provider, mapping;
        if (options.IsSqlite)
        {
            Directory.CreateDirectory(options.DataDir);
            connection = $"Data Source={options.SqliteFile};Pooling=True";
            provider = "SQLite.MS";
            mapping = "sqlite";
        }
        else
        {
            connection = options.Db;
            provider = "PostgreSQL.15";
            mapping = "postgresql";
        }
        var plugin = $$"""
            connection-string = {{Quote(connection)}}
            provider-name = "{{provider}}"
            table-mapping = {{mapping}}
            auto-initialize = true
            """;
        return $$"""
            akka.persistence.journal.plugin = "akka.persistence.journal.sql"
            akka.persistence.journal.sql { {{plugin}} }
            akka.persistence.snapshot-store.plugin = "akka.persistence.snapshot-store.sql"
            akka.persistence.snapshot-store.sql { {{plugin}} }
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
