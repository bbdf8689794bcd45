using System.Data.Common;

namespace WhaleWall.Actors.State.Sql;

/// <summary>Connections to one state database, its tables made (if absent) before the first use;
/// a failed attempt is tried again on the next call. Each call opens a connection from the
/// driver's pool and gives it back when done.</summary>
public sealed class SqlDatabase(SqlDialect dialect, string connectionString, IReadOnlyList<string> schema)
{
    private readonly SemaphoreSlim schemaGate = new(1, 1);
    private volatile bool schemaMade;

    public SqlDialect Dialect => dialect;

    /// <summary>From a plugin's configuration: <c>dialect</c> and <c>connection-string</c>.</summary>
    public static SqlDatabase For(Akka.Configuration.Config config, Func<SqlDialect, IReadOnlyList<string>> schema)
    {
        var dialect = SqlDialect.Named(config.GetString("dialect"));
        return new SqlDatabase(dialect, config.GetString("connection-string"), schema(dialect));
    }

    public async Task<DbConnection> OpenAsync(CancellationToken ct)
    {
        var connection = dialect.Connect(connectionString);
        try
        {
            await connection.OpenAsync(ct);
            if (!schemaMade) await MakeSchemaAsync(connection, ct);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    private async Task MakeSchemaAsync(DbConnection connection, CancellationToken ct)
    {
        await schemaGate.WaitAsync(ct);
        try
        {
            if (schemaMade) return;
            foreach (var statement in dialect.FirstUse.Concat(schema))
                await Command(connection, null, statement).ExecuteNonQueryAsync(ct);
            schemaMade = true;
        }
        finally { schemaGate.Release(); }
    }

    /// <summary>A command with named parameters (<c>@name</c> in <paramref name="sql"/>).</summary>
    public static DbCommand Command(DbConnection connection, DbTransaction? transaction, string sql, params (string Name, object? Value)[] parameters)
    {
        var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        foreach (var (name, value) in parameters) Parameter(command, name, value);
        return command;
    }

    public static DbParameter Parameter(DbCommand command, string name, object? value)
    {
        var p = command.CreateParameter();
        p.ParameterName = name;
        p.Value = value ?? DBNull.Value;
        command.Parameters.Add(p);
        return p;
    }
}
