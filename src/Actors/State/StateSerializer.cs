using System.Collections.Immutable;
using System.Text.Json;
using System.Text.Json.Nodes;
using Akka.Actor;
using Akka.Serialization;
using WhaleWall.Firewall.Policy;
using static WhaleWall.Actors.State.StoredEvents;

namespace WhaleWall.Actors.State;

/// <summary>Journal and snapshot format: JSON with explicit, versioned type names (the
/// manifest) and explicit field names, independent of .NET type and member names. A name
/// written once is read forever: change a shape by adding <c>.v2</c>, keep reading <c>.v1</c>.</summary>
public sealed class StateSerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
{
    public const int Id = 47110;
    public const string Recorded = "container-recorded.v1";
    public const string Forgotten = "container-forgotten.v1";
    public const string Processed = "events-processed.v1";
    public const string Cleared = "state-cleared.v1";
    public const string StateSnapshot = "containers-snapshot.v1";

    public override int Identifier => Id;

    public override string Manifest(object o) => o switch
    {
        ContainerRecorded => Recorded,
        ContainerForgotten => Forgotten,
        EventsProcessed => Processed,
        StateCleared => Cleared,
        ContainerStoreState => StateSnapshot,
        _ => throw new ArgumentException($"{o.GetType()} is not a WhaleWall state type"),
    };

    public override byte[] ToBinary(object o) => JsonSerializer.SerializeToUtf8Bytes(ToJson(o));

    public override object FromBinary(byte[] bytes, string manifest) => FromJson(JsonNode.Parse(bytes)!.AsObject(), manifest);

    public static JsonObject ToJson(object o) => o switch
    {
        ContainerRecorded r => new JsonObject
        {
            ["facts"] = FactsJson(r.Facts),
            ["errors"] = new JsonArray(r.Errors.Select(e => (JsonNode)e).ToArray()),
            ["at"] = r.AtUnixMs,
        },
        ContainerForgotten f => new JsonObject { ["id"] = f.Id, ["at"] = f.AtUnixMs },
        EventsProcessed p => new JsonObject { ["docker_time_ns"] = p.DockerTimeNanos },
        StateCleared c => new JsonObject { ["at"] = c.AtUnixMs },
        ContainerStoreState s => new JsonObject
        {
            ["docker_time_ns"] = s.LastEventNanos,
            ["containers"] = new JsonArray(s.Containers.Values.Select(c => (JsonNode)new JsonObject
            {
                ["facts"] = FactsJson(c.Facts),
                ["errors"] = new JsonArray(c.Errors.Select(e => (JsonNode)e).ToArray()),
                ["at"] = c.UpdatedUnixMs,
            }).ToArray()),
        },
        _ => throw new ArgumentException($"{o.GetType()} is not a WhaleWall state type"),
    };

    public static object FromJson(JsonObject j, string manifest) => manifest switch
    {
        Recorded => new ContainerRecorded(ReadFacts(j["facts"]!.AsObject()), ReadErrors(j["errors"]), j["at"]!.GetValue<long>()),
        Forgotten => new ContainerForgotten(j["id"]!.GetValue<string>(), j["at"]!.GetValue<long>()),
        Processed => new EventsProcessed(j["docker_time_ns"]!.GetValue<long>()),
        Cleared => new StateCleared(j["at"]!.GetValue<long>()),
        StateSnapshot => new ContainerStoreState(
            j["containers"]!.AsArray().Select(n => n!.AsObject()).Select(c => new StoredContainer(
                    ReadFacts(c["facts"]!.AsObject()), ReadErrors(c["errors"]), c["at"]!.GetValue<long>()))
                .ToImmutableSortedDictionary(c => c.Facts.Id, c => c, StringComparer.Ordinal),
            j["docker_time_ns"]!.GetValue<long>()),
        _ => throw new System.Runtime.Serialization.SerializationException($"unknown WhaleWall state type \"{manifest}\" (written by a newer version?)"),
    };

    private static JsonObject FactsJson(ContainerFacts f) => new()
    {
        ["id"] = f.Id,
        ["name"] = f.Name,
        ["running"] = f.Running,
        ["labels"] = new JsonObject(f.Labels.OrderBy(l => l.Key, StringComparer.Ordinal)
            .Select(l => KeyValuePair.Create(l.Key, (JsonNode?)l.Value))),
        ["networks"] = new JsonArray(f.Networks.Select(n => (JsonNode)new JsonObject
        {
            ["name"] = n.Name,
            ["id"] = n.Id,
            ["ipv4"] = n.IPv4?.ToString(),
            ["ipv6"] = n.IPv6?.ToString(),
        }).ToArray()),
        ["ports"] = new JsonArray(f.Ports.Select(p => (JsonNode)new JsonObject
        {
            ["container_port"] = p.ContainerPort,
            ["proto"] = p.Proto == L4Proto.Udp ? "udp" : "tcp",
            ["host_ip"] = p.HostIp,
            ["host_port"] = p.HostPort,
        }).ToArray()),
    };

    private static ContainerFacts ReadFacts(JsonObject j) => new(
        j["id"]!.GetValue<string>(),
        j["name"]!.GetValue<string>(),
        j["running"]!.GetValue<bool>(),
        j["labels"]!.AsObject().ToImmutableDictionary(kv => kv.Key, kv => kv.Value!.GetValue<string>()),
        [.. j["networks"]!.AsArray().Select(n => new NetworkAttachment(
            n!["name"]!.GetValue<string>(),
            n["id"]!.GetValue<string>(),
            ReadAddress(n["ipv4"]),
            ReadAddress(n["ipv6"])))],
        [.. j["ports"]!.AsArray().Select(p => new PublishedPort(
            p!["container_port"]!.GetValue<ushort>(),
            p["proto"]!.GetValue<string>() == "udp" ? L4Proto.Udp : L4Proto.Tcp,
            p["host_ip"]!.GetValue<string>(),
            p["host_port"]!.GetValue<ushort>()))]);

    private static System.Net.IPAddress? ReadAddress(JsonNode? n) =>
        n?.GetValue<string>() is { } s && Addresses.TryParse(s, out var a) ? a : null;

    private static ImmutableArray<string> ReadErrors(JsonNode? n) =>
        n is null ? [] : [.. n.AsArray().Select(e => e!.GetValue<string>())];
}
