using System.Collections.Immutable;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using WhaleWall.Firewall.Names;

namespace WhaleWall.Firewall.Dns;

/// <summary>What the DNS proxy taught each container, by the <c>hosts:</c> entry of its rules
/// the addresses open (address -> expiry): the state a container actor keeps as <c>Learned</c>.</summary>
public static class LearnedMap
{
    public static readonly ImmutableDictionary<string, ImmutableDictionary<IPAddress, DateTimeOffset>> Empty =
        ImmutableDictionary<string, ImmutableDictionary<IPAddress, DateTimeOffset>>.Empty;

    /// <summary>Only what expires after <paramref name="now"/>; empty entries go.</summary>
    public static ImmutableDictionary<string, ImmutableDictionary<IPAddress, DateTimeOffset>> Alive(
        ImmutableDictionary<string, ImmutableDictionary<IPAddress, DateTimeOffset>> learned, DateTimeOffset now)
    {
        var builder = Empty.ToBuilder();
        foreach (var (name, addresses) in learned)
        {
            var alive = addresses.Where(a => a.Value > now).ToImmutableDictionary();
            if (!alive.IsEmpty) builder[name] = alive;
        }
        return builder.ToImmutable();
    }
}

/// <summary>
/// The learned addresses of every container as the daemon keeps them across a restart
/// (<c>learned.json</c> in the data directory, docs/dns-proxy.md "Restart"):
/// <c>{"version": 1, "containers": {id: {hosts entry: {address: expiry}}}}</c>, keyed by
/// container ID (never by address: a reused address must not inherit anything). Pure: time is
/// passed in. The file is input that may be wrong or hostile: <see cref="Parse"/> never throws,
/// bounds its work, and keeps only entries that could have come from the proxy (a 64-hex
/// container ID, a hosts entry in its normalised grammar, an address the proxy would learn, an
/// expiry in the future and at most max TTL + grace away, at most the per-container cap).
/// </summary>
public static class LearnedSnapshot
{
    public const int Version = 1;
    /// <summary>Larger files are ignored whole (10,000 containers at a few addresses each fit easily).</summary>
    public const int MaxBytes = 8 * 1024 * 1024;
    public const int MaxContainers = 100_000;

    public sealed record Parsed(
        ImmutableDictionary<string, ImmutableDictionary<string, ImmutableDictionary<IPAddress, DateTimeOffset>>> Containers,
        ImmutableArray<string> Problems,
        int Expired);

    public static readonly ImmutableDictionary<string, ImmutableDictionary<string, ImmutableDictionary<IPAddress, DateTimeOffset>>> None =
        ImmutableDictionary<string, ImmutableDictionary<string, ImmutableDictionary<IPAddress, DateTimeOffset>>>.Empty.WithComparers(StringComparer.Ordinal);

    /// <summary>The file's content (UTF-8) as the daemon may use it at <paramref name="now"/>:
    /// expired entries dropped (counted), invalid ones dropped (each kind of problem said once),
    /// a file that is not what WhaleWall writes ignored whole.</summary>
    public static Parsed Parse(ReadOnlySpan<byte> utf8, DateTimeOffset now, TimeSpan maxTimeout, int perContainer)
    {
        if (utf8.Length > MaxBytes) return Ignored($"larger than {MaxBytes} bytes");
        JsonNode? root;
        try { root = JsonNode.Parse(utf8, documentOptions: new JsonDocumentOptions { MaxDepth = 8 }); }
        catch (Exception e) when (e is JsonException or ArgumentException or InvalidOperationException) { return Ignored("not JSON: " + SafeText.Escape(e.Message)); }
        if (root is not JsonObject top || top["version"] is not JsonValue v || !v.TryGetValue<int>(out var version) || version != Version)
            return Ignored($"not version {Version} of the format");
        if (top["containers"] is not JsonObject containers) return Ignored("no \"containers\" object");
        if (containers.Count > MaxContainers) return Ignored($"more than {MaxContainers} containers");

        var problems = new SortedSet<string>(StringComparer.Ordinal);
        var expired = 0;
        var result = None.ToBuilder();
        var latest = now + maxTimeout;
        foreach (var (id, hostsNode) in containers)
        {
            if (!IsContainerId(id)) { problems.Add("a key that is not a container ID"); continue; }
            if (hostsNode is not JsonObject hosts) { problems.Add("a container that is not an object"); continue; }
            var learned = LearnedMap.Empty.ToBuilder();
            var count = 0;
            foreach (var (host, addressesNode) in hosts)
            {
                if (!NamePattern.TryParse(host, out var pattern, out _) || pattern.ToString() != host) { problems.Add("a name that is not a hosts entry"); continue; }
                if (addressesNode is not JsonObject addresses) { problems.Add("a name whose addresses are not an object"); continue; }
                var forHost = ImmutableDictionary.CreateBuilder<IPAddress, DateTimeOffset>();
                foreach (var (text, expiryNode) in addresses)
                {
                    if (text.Length > 45 || !IPAddress.TryParse(text, out var address) || address.ToString() != text || !AnswerCheck.Learnable(address))
                    { problems.Add("an address that is not one the proxy learns"); continue; }
                    if (expiryNode is not JsonValue ev || !ev.TryGetValue<string>(out var expiryText) ||
                        !DateTimeOffset.TryParseExact(expiryText, "O", null, System.Globalization.DateTimeStyles.None, out var expiry))
                    { problems.Add("an expiry that is not a time"); continue; }
                    if (expiry <= now) { expired++; continue; }
                    if (expiry > latest) { problems.Add($"an expiry later than max TTL + grace ({maxTimeout.TotalSeconds:0} s)"); continue; }
                    if (count >= perContainer) { problems.Add($"more than {perContainer} addresses for one container"); break; }
                    forHost[address] = expiry;
                    count++;
                }
                if (forHost.Count > 0) learned[host] = forHost.ToImmutable();
            }
            if (learned.Count > 0) result[id] = learned.ToImmutable();
        }
        return new Parsed(result.ToImmutable(), [.. problems], expired);
    }

    /// <summary>The file's content at <paramref name="now"/> (expired entries left out), UTF-8.</summary>
    public static byte[] ToJson(IEnumerable<KeyValuePair<string, ImmutableDictionary<string, ImmutableDictionary<IPAddress, DateTimeOffset>>>> containers, DateTimeOffset now)
    {
        var root = new JsonObject();
        foreach (var (id, learned) in containers.OrderBy(c => c.Key, StringComparer.Ordinal))
        {
            var hosts = new JsonObject();
            foreach (var (host, addresses) in learned.OrderBy(h => h.Key, StringComparer.Ordinal))
            {
                var alive = new JsonObject();
                foreach (var (address, expiry) in addresses.Where(a => a.Value > now).OrderBy(a => a.Key.ToString(), StringComparer.Ordinal))
                    alive[address.ToString()] = expiry.ToUniversalTime().ToString("O");
                if (alive.Count > 0) hosts[host] = alive;
            }
            if (hosts.Count > 0) root[id] = hosts;
        }
        return Encoding.UTF8.GetBytes(new JsonObject { ["version"] = Version, ["containers"] = root }.ToJsonString());
    }

    /// <summary>A Docker container ID: 64 lower-case hex digits.</summary>
    public static bool IsContainerId(string id) => id.Length == 64 && id.All(c => c is >= '0' and <= '9' or >= 'a' and <= 'f');

    private static Parsed Ignored(string why) => new(None, [$"ignored: {why}"], 0);
}
