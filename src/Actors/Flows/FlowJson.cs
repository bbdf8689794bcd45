using System.Collections.Immutable;
using System.Text.Json.Nodes;
using WhaleWall.Firewall.Flows;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Actors.Flows;

/// <summary>The journal's spelling of owners and their flows (explicit field names, never .NET member names).</summary>
public static class FlowJson
{
    public static JsonArray Write(IEnumerable<OwnerFlows> owners) => new([.. owners.Select(o => (JsonNode)Write(o))]);

    public static JsonObject Write(OwnerFlows o) => new()
    {
        ["owner"] = o.Owner,
        ["project"] = o.Project,
        ["service"] = o.Service,
        ["containers"] = new JsonArray([.. o.Containers.Select(c => (JsonNode)c)]),
        ["overflow"] = o.Overflow,
        ["flows"] = new JsonArray([.. o.Flows.OrderBy(f => f.Key.Destination, StringComparer.Ordinal).ThenBy(f => f.Key.Proto).ThenBy(f => f.Key.Port)
            .Select(f => (JsonNode)new JsonObject
            {
                ["kind"] = Kind(f.Key.Kind),
                ["destination"] = f.Key.Destination,
                ["proto"] = (int)f.Key.Proto,
                ["port"] = f.Key.Port,
                ["first"] = f.Value.FirstMs,
                ["last"] = f.Value.LastMs,
                ["count"] = f.Value.Count,
                ["audit_drops"] = f.Value.AuditDrops,
            })]),
    };

    public static ImmutableArray<OwnerFlows> Read(JsonNode? owners) =>
        owners is JsonArray a ? [.. a.Select(o => Read(o!.AsObject()))] : [];

    public static OwnerFlows Read(JsonObject o) => new(
        o["owner"]!.GetValue<string>(),
        o["project"]?.GetValue<string>(),
        o["service"]?.GetValue<string>(),
        [.. (o["containers"]?.AsArray() ?? []).Select(c => c!.GetValue<string>())],
        (o["flows"]?.AsArray() ?? []).Select(n => n!.AsObject()).ToImmutableDictionary(
            f => new FlowKey(Kind(f["kind"]!.GetValue<string>()), f["destination"]!.GetValue<string>(),
                (L4Proto)f["proto"]!.GetValue<int>(), f["port"]!.GetValue<ushort>()),
            f => new FlowStats(f["first"]!.GetValue<long>(), f["last"]!.GetValue<long>(), f["count"]!.GetValue<long>(), f["audit_drops"]!.GetValue<long>())),
        o["overflow"]?.GetValue<long>() ?? 0);

    public static string Kind(DestinationKind kind) => kind switch
    {
        DestinationKind.Container => "container",
        DestinationKind.Host => "host",
        _ => "address",
    };

    private static DestinationKind Kind(string kind) => kind switch
    {
        "container" => DestinationKind.Container,
        "host" => DestinationKind.Host,
        _ => DestinationKind.Address,
    };
}
