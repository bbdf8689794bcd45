using System.Collections.Immutable;
using System.Text.Json;
using System.Text.Json.Nodes;
using WhaleWall.Actors.Containers;

namespace WhaleWall.Actors.Metrics;

/// <summary>Who writes the report: the daemon's process and configuration.</summary>
/// <paramref name="Binding"/>: containers are bound to their bridge ports (docs/binding.md).
/// <paramref name="Decision"/>: the settings the daemon decides with (<c>explain</c> and <c>suggest --unused</c> use them).
public sealed record DaemonIdentity(int Pid, DateTimeOffset Started, string Node, string Table, string Version, bool Binding = false,
    WhaleWall.Firewall.Decide.DecisionSettings? Decision = null);

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
/// <param name="learned">the DNS proxy's learned names per container id, now (null: no proxy)</param>
public sealed class DaemonReportFile(string path, DaemonIdentity identity, Func<DateTimeOffset, IReadOnlyDictionary<string, ImmutableArray<LearnedName>>>? learned = null) : IDaemonReport
{
    public const string FileName = "daemon.json";

    public string Path => path;

    /// <summary>Each container's entry as last written, serialized: the report is rewritten every
    /// few seconds, and rebuilding 1,000 unchanged entries as JSON trees each time was most of an
    /// idle daemon's allocations. An entry is serialized again when the container's view entry
    /// (an immutable record, replaced on any change) or its learned names are not the ones
    /// written last.</summary>
    private Dictionary<string, (ContainerEntry Entry, ImmutableArray<LearnedName>? Learned, byte[] Json)> written = new(StringComparer.Ordinal);

    public void Write(DaemonView.Snapshot snapshot, DateTimeOffset now)
    {
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(path)!);
        var temp = path + ".tmp";
        var learnedNow = learned?.Invoke(now);
        var next = new Dictionary<string, (ContainerEntry, ImmutableArray<LearnedName>?, byte[])>(snapshot.Containers.Count, StringComparer.Ordinal);
        // streamed to the file: with 1,000 containers the text is megabytes, and as one string it
        // was a large-object allocation every few seconds that the daemon's RSS kept
        using (var stream = File.Create(temp))
        using (var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            writer.WriteStartObject();
            foreach (var (name, value) in Head(snapshot, identity, now))
            {
                writer.WritePropertyName(name);
                if (value is null) writer.WriteNullValue(); else value.WriteTo(writer);
            }
            writer.WriteStartArray("containers");
            foreach (var c in Ordered(snapshot))
            {
                var names = LearnedOf(learnedNow, c.Id);
                var json = written.TryGetValue(c.Id, out var last) && ReferenceEquals(last.Entry, c) && Same(last.Learned, names)
                    ? last.Json
                    : JsonSerializer.SerializeToUtf8Bytes(Container(c, identity.Binding, names));
                next[c.Id] = (c, names, json);
                writer.WriteRawValue(json, skipInputValidation: true);
                if (writer.BytesPending > 64 * 1024) writer.Flush(); // else its buffer grows to the whole text
            }
            writer.WriteEndArray();
            writer.WriteEndObject();
        }
        File.Move(temp, path, overwrite: true);
        written = next;
    }

    private static bool Same(ImmutableArray<LearnedName>? a, ImmutableArray<LearnedName>? b) =>
        a is null ? b is null : b is not null && a.Value.SequenceEqual(b.Value);

    public static JsonObject? Read(string path)
    {
        try { return File.Exists(path) ? JsonNode.Parse(File.ReadAllText(path)) as JsonObject : null; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException) { return null; }
    }

    /// <summary>The report's content. Pure.</summary>
    public static JsonObject ToJson(DaemonView.Snapshot snapshot, DaemonIdentity identity, DateTimeOffset now,
        IReadOnlyDictionary<string, ImmutableArray<LearnedName>>? learned = null)
    {
        var json = Head(snapshot, identity, now);
        json["containers"] = new JsonArray([.. Ordered(snapshot).Select(c => (JsonNode)Container(c, identity.Binding, LearnedOf(learned, c.Id)))]);
        return json;
    }

    private static IEnumerable<ContainerEntry> Ordered(DaemonView.Snapshot snapshot) =>
        snapshot.Containers.Values.OrderBy(c => c.Name, StringComparer.Ordinal).ThenBy(c => c.Id, StringComparer.Ordinal);

    /// <summary>Everything but the containers.</summary>
    private static JsonObject Head(DaemonView.Snapshot snapshot, DaemonIdentity identity, DateTimeOffset now)
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
            ["binding"] = identity.Binding,
            ["decision"] = identity.Decision?.ToJson(),
            ["healthy"] = health.Healthy,
            ["problems"] = Strings(health.Problems),
            ["pending"] = Strings(health.Pending),
            ["table_ready"] = snapshot.TableReady,
            ["docker_connected"] = snapshot.DockerConnected,
        };
    }

    private static ImmutableArray<LearnedName>? LearnedOf(IReadOnlyDictionary<string, ImmutableArray<LearnedName>>? learned, string id) =>
        learned is null ? null : learned.TryGetValue(id, out var names) ? names : ImmutableArray<LearnedName>.Empty;

    private static JsonObject Container(ContainerEntry c, bool binding, ImmutableArray<LearnedName>? learned)
    {
        var entry = Container(c, binding);
        // what the container's own lookups opened through the DNS proxy (until each expires)
        if (learned is { } names)
            entry["dns_learned"] = new JsonArray([.. names.Select(n => (JsonNode)new JsonObject
            {
                ["name"] = n.Name,
                ["address"] = n.Address,
                ["expires"] = n.Expires.ToString("O"),
            })]);
        return entry;
    }

    private static JsonObject Container(ContainerEntry c, bool binding) => new()
    {
        ["id"] = c.Id,
        ["name"] = c.Name,
        ["state"] = StateLabel(c.State),
        ["mode"] = c.Audited ? "audit" : "enforce",
        ["learn"] = c.Learn && c.State != ContainerState.Unmanaged,
        ["reasons"] = Strings(c.ReasonsOrEmpty),
        ["addresses"] = Strings(c.Facts?.Addresses.Select(a => a.ToString()) ?? []),
        ["networks"] = new JsonArray([.. (c.Facts?.Networks ?? []).Select(n => (JsonNode)new JsonObject
        {
            ["name"] = n.Name,
            ["driver"] = n.Driver,
            ["ipv4"] = n.IPv4?.ToString(),
            ["ipv6"] = n.IPv6?.ToString(),
            ["bridge"] = n.Bridge,
            ["port"] = n.Port?.Name,
            ["binding"] = BindingOf(n, binding),
        })]),
        ["network_mode"] = c.Facts?.NetworkMode,
        ["image"] = c.Image,
        ["compose_project"] = c.ComposeProject,
        ["compose_service"] = c.ComposeService,
        // what `whalewall explain` decides and compiles from (bounded: FactsJson)
        ["facts"] = c.Facts is null ? null : WhaleWall.Firewall.Explain.FactsJson.ToJson(c.Facts),
    };

    /// <summary>Whether an attachment is bound to its port: <c>bound</c>; <c>unbound</c> (its port
    /// is not known yet or could not be found: it sends nothing); <c>none</c> (not a bridge
    /// network, or binding is off).</summary>
    public static string BindingOf(WhaleWall.Firewall.Policy.NetworkAttachment n, bool binding) =>
        !binding || !WhaleWall.Firewall.Compile.BindingElements.Bindable(n) ? "none" : n.Port is null ? "unbound" : "bound";

    /// <summary>A state as status and the metrics' state label spell it.</summary>
    public static string StateLabel(ContainerState state) => WhaleWallMetrics.StateLabel(state);

    private static JsonArray Strings(IEnumerable<string> items) => new([.. items.Select(i => (JsonNode)i)]);
}
