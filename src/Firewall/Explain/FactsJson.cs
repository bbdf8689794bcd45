using System.Collections.Immutable;
using System.Net;
using System.Text.Json.Nodes;
using WhaleWall.Firewall.Labels;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Firewall.Explain;

/// <summary>A container's facts as the daemon's report carries them for <c>whalewall explain</c>
/// (<c>containers[].facts</c> of <c>daemon.json</c>): only what the decision and the compiler
/// read. Bounded: the labels that decide (<c>whalewall.*</c>, <c>dockerwall.*</c>, the compose
/// project and service), each cut one character past the largest label the parser accepts (a
/// cut label is refused as the whole one is), at most <see cref="MaxItems"/> of each list.
/// <see cref="Read"/> takes the file as untrusted input: it never throws and skips what is not
/// well formed.</summary>
public static class FactsJson
{
    public const int MaxItems = 64;
    private const int MaxLabel = LabelKeys.MaxRulesLabelBytes + 1;

    public static bool Decides(string label) =>
        label.StartsWith("whalewall.", StringComparison.Ordinal) || label.StartsWith("dockerwall.", StringComparison.Ordinal) ||
        label is ContainerFacts.ComposeProjectLabel or ContainerFacts.ComposeServiceLabel;

    public static JsonObject ToJson(ContainerFacts f) => new()
    {
        ["running"] = f.Running,
        ["labels"] = new JsonObject(f.Labels.Where(l => Decides(l.Key)).OrderBy(l => l.Key, StringComparer.Ordinal).Take(MaxItems)
            .Select(l => KeyValuePair.Create(l.Key, (JsonNode?)(l.Value.Length > MaxLabel ? l.Value[..MaxLabel] : l.Value)))),
        ["networks"] = new JsonArray([.. f.Networks.Take(MaxItems).Select(n => (JsonNode)new JsonObject
        {
            ["name"] = n.Name,
            ["id"] = n.Id,
            ["driver"] = n.Driver,
            ["ipv4"] = n.IPv4?.ToString(),
            ["ipv4_prefix"] = n.IPv4Prefix,
            ["ipv6"] = n.IPv6?.ToString(),
            ["ipv6_prefix"] = n.IPv6Prefix,
        })]),
        ["ports"] = new JsonArray([.. f.Ports.Take(MaxItems).Select(p => (JsonNode)new JsonObject
        {
            ["container_port"] = p.ContainerPort,
            ["proto"] = p.Proto.ToString().ToLowerInvariant(),
            ["host_ip"] = p.HostIp,
            ["host_port"] = p.HostPort,
        })]),
        ["dns_servers"] = new JsonArray([.. f.DnsServersOrEmpty.Take(MaxItems).Select(a => (JsonNode)a.ToString())]),
        ["network_mode"] = f.NetworkMode,
    };

    /// <summary>The facts of one report entry (<paramref name="id"/>, <paramref name="name"/> from
    /// the entry), or null when it carries none.</summary>
    public static ContainerFacts? Read(string id, string name, JsonNode? node)
    {
        if (node is not JsonObject f) return null;
        var labels = ImmutableDictionary.CreateBuilder<string, string>();
        if (f["labels"] is JsonObject l)
            foreach (var (key, value) in l.Take(MaxItems))
                if (Decides(key) && Text(value) is { } v) labels[key] = v.Length > MaxLabel ? v[..MaxLabel] : v;
        var networks = ImmutableArray.CreateBuilder<NetworkAttachment>();
        foreach (var n in Items(f["networks"]))
            if (Text(n["name"]) is { } network)
                networks.Add(new NetworkAttachment(network, Text(n["id"]) ?? "", Address(n["ipv4"]), Address(n["ipv6"]),
                    Int(n["ipv4_prefix"], 0, 32) ?? 32, Int(n["ipv6_prefix"], 0, 128) ?? 128, Text(n["driver"]) ?? "bridge"));
        var ports = ImmutableArray.CreateBuilder<PublishedPort>();
        foreach (var p in Items(f["ports"]))
            if (Int(p["container_port"], 0, ushort.MaxValue) is { } port && Proto(Text(p["proto"])) is { } proto)
                ports.Add(new PublishedPort((ushort)port, proto, Text(p["host_ip"]) ?? "", (ushort)(Int(p["host_port"], 0, ushort.MaxValue) ?? 0)));
        var dns = (f["dns_servers"] as JsonArray ?? []).Take(MaxItems).Select(Address).OfType<IPAddress>().ToImmutableArray();
        return new ContainerFacts(id, name, f["running"] is JsonValue r && r.TryGetValue<bool>(out var running) && running,
            labels.ToImmutable(), networks.ToImmutable(), ports.ToImmutable(), dns, NetworkMode: Text(f["network_mode"]));
    }

    private static IEnumerable<JsonObject> Items(JsonNode? node) => (node as JsonArray ?? []).Take(MaxItems).OfType<JsonObject>();

    private static string? Text(JsonNode? node) => node is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;

    private static int? Int(JsonNode? node, int min, int max) =>
        node is JsonValue v && v.TryGetValue<int>(out var n) && n >= min && n <= max ? n : null;

    private static IPAddress? Address(JsonNode? node) => Text(node) is { } s && Addresses.TryParse(s, out var a) ? a : null;

    private static L4Proto? Proto(string? text) => text switch
    {
        "tcp" => L4Proto.Tcp,
        "udp" => L4Proto.Udp,
        _ => null,
    };
}
