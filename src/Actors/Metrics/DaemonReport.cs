using System.Text.Json;
using System.Text.Json.Nodes;
using WhaleWall.Actors.Containers;

namespace WhaleWall.Actors.Metrics;

/// <summary>Who writes the report: the daemon's process and configuration.</summary>
public sealed record DaemonIdentity(int Pid, DateTimeOffset Started, string Node, string Table, string Version);

/// <summary>Where the <see cref="MetricsActor"/> publishes the daemon's own view.</summary>
public interface IDaemonReport
{
    void Write(DaemonView.Snapshot snapshot, DateTimeOffset now);
}

/// <summary>The daemon's view as JSON in the data directory (<c>daemon.json</c>), written
/// atomically (temp file + rename) by the <see cref="MetricsActor"/> at most once a second when
/// something changed and every few seconds anyway (so a reader can tell a live daemon from a
/// dead one's last words). `whalewall status` shows what is in it: what the daemon enforces,
/// not what the CLI would decide. Fields: README "Status".</summary>
public sealed class DaemonReportFile(string path, DaemonIdentity identity) : IDaemonReport
{
    public const string FileName = "daemon.json";

    public string Path => path;

    public void Write(DaemonView.Snapshot snapshot, DateTimeOffset now)
    {
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(path)!);
        var temp = path + ".tmp";
        File.WriteAllText(temp, ToJson(snapshot, identity, now).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        File.Move(temp, path, overwrite: true);
    }

    public static JsonObject? Read(string path)
    {
        try { return File.Exists(path) ? JsonNode.Parse(File.ReadAllText(path)) as JsonObject : null; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException) { return null; }
    }

    /// <summary>The report's content. Pure.</summary>
    public static JsonObject ToJson(DaemonView.Snapshot snapshot, DaemonIdentity identity, DateTimeOffset now)
    {
        var health = snapshot.Health(now);
        return new JsonObject
        {
            ["pid"] = identity.Pid,
            ["started"] = identity.Started.ToString("O"),
            ["written"] = now.ToString("O"),
            ["node"] = identity.Node,
            ["table"] = identity.Table,
            ["version"] = identity.Version,
            ["healthy"] = health.Healthy,
            ["problems"] = Strings(health.Problems),
            ["pending"] = Strings(health.Pending),
            ["table_ready"] = snapshot.TableReady,
            ["docker_connected"] = snapshot.DockerConnected,
            ["containers"] = new JsonArray([.. snapshot.Containers.Values
                .OrderBy(c => c.Name, StringComparer.Ordinal).ThenBy(c => c.Id, StringComparer.Ordinal)
                .Select(c => (JsonNode)Container(c))]),
        };
    }

    private static JsonObject Container(ContainerEntry c) => new()
    {
        ["id"] = c.Id,
        ["name"] = c.Name,
        ["state"] = StateLabel(c.State),
        ["reasons"] = Strings(c.ReasonsOrEmpty),
        ["addresses"] = Strings(c.Facts?.Addresses.Select(a => a.ToString()) ?? []),
        ["networks"] = new JsonArray([.. (c.Facts?.Networks ?? []).Select(n => (JsonNode)new JsonObject
        {
            ["name"] = n.Name,
            ["driver"] = n.Driver,
            ["ipv4"] = n.IPv4?.ToString(),
            ["ipv6"] = n.IPv6?.ToString(),
        })]),
        ["network_mode"] = c.Facts?.NetworkMode,
        ["image"] = c.Image,
        ["compose_project"] = c.ComposeProject,
        ["compose_service"] = c.ComposeService,
    };

    /// <summary>A state as status and the metrics' state label spell it.</summary>
    public static string StateLabel(ContainerState state) => WhaleWallMetrics.StateLabel(state);

    private static JsonArray Strings(IEnumerable<string> items) => new([.. items.Select(i => (JsonNode)i)]);
}
