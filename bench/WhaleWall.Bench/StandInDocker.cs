using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace WhaleWall.Bench;

/// <summary>A stand-in for dockerd's API (1.41, as dockerd 20.10 speaks it) on a unix socket,
/// serving what the daemon's Docker client asks (src/Actors/Docker/DockerSource.cs): `_ping`,
/// `version`, `containers/json`, `containers/{id}/json`, `networks`, `networks/{id}`, and the
/// `events` stream (chunked JSON, one object a line, honouring `since` and the `type` filter).
/// Containers are made up (<see cref="Synthetic"/>: 198.18.x.y only, one bridge network
/// 198.18.0.0/16 whose bridge does not exist); nothing carries traffic. Field names are Docker's.</summary>
public sealed class StandInDocker : IAsyncDisposable
{
    public const string NetworkName = "benchnet";
    public static readonly string NetworkId = new string('b', 12) + "0123456789abcdef0123456789abcdef0123456789abcdef0123";

    private sealed record Container(int Index, string Id, bool Running);

    private readonly object gate = new();
    private readonly Dictionary<string, Container> containers = new();
    private readonly List<JsonObject> log = new();
    private readonly List<Channel<(long TimeNano, string Type, string Json)>> subscribers = new();
    private readonly WebApplication app;

    public string SocketPath { get; }
    public string DockerHost => "unix://" + SocketPath;
    public int Requests => requests;
    private int requests;

    private StandInDocker(string socketPath)
    {
        SocketPath = socketPath;
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.ListenUnixSocket(socketPath));
        builder.Services.Configure<Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerOptions>(o => o.AllowSynchronousIO = false);
        app = builder.Build();
        app.Use(async (http, next) =>
        {
            Interlocked.Increment(ref requests);
            // /v1.41/containers/json and /containers/json alike
            var path = http.Request.Path.Value ?? "/";
            if (path.StartsWith("/v1.", StringComparison.Ordinal) && path.IndexOf('/', 1) is > 0 and var slash)
                http.Request.Path = path[slash..];
            http.Response.Headers["Api-Version"] = "1.41";
            http.Response.Headers["Server"] = "Docker/20.10.24 (linux)";
            await next(http);
        });
        app.MapGet("/_ping", () => Results.Text("OK"));
        app.MapGet("/version", () => Results.Text(
            """{"Version":"20.10.24","ApiVersion":"1.41","MinAPIVersion":"1.12","Os":"linux","Arch":"amd64"}""", "application/json"));
        app.MapGet("/containers/json", () => Json(ListContainers()));
        app.MapGet("/containers/{id}/json", (string id) => InspectContainer(id) is { } c ? Json(c) : NotFound($"No such container: {id}"));
        app.MapGet("/networks", () => Json(new JsonArray(Network(withContainers: false))));
        app.MapGet("/networks/{id}", (string id) => id is NetworkName || id == NetworkId ? Json(Network(withContainers: true)) : NotFound($"network {id} not found"));
        app.MapGet("/events", StreamEventsAsync);
        app.MapFallback((HttpContext http) => NotFound($"stand-in: {http.Request.Method} {http.Request.Path} is not served"));
    }

    public static async Task<StandInDocker> StartAsync(string socketPath)
    {
        if (File.Exists(socketPath)) File.Delete(socketPath);
        var standIn = new StandInDocker(socketPath);
        await standIn.app.StartAsync();
        return standIn;
    }

    /// <summary>The stand-in as a process of its own (<see cref="StandInDockerProcess"/>): serves
    /// <paramref name="socketPath"/> and takes one command a line on stdin, answering each on
    /// stdout with <c>ok [value]</c> or <c>error message</c>: <c>ready</c>, <c>seed I PREFIX</c>,
    /// <c>clear</c>, <c>run I PREFIX</c> and <c>remove I PREFIX</c> (the event's timestamp),
    /// <c>requests</c>. Ends when stdin does. The commands are read and answered on the main
    /// thread, blocking: a loop that awaited Console's reader would hold one of the thread
    /// pool's threads (it reads synchronously), which serve the HTTP requests and the event stream.</summary>
    public static int Serve(string socketPath)
    {
        var standIn = StartAsync(socketPath).GetAwaiter().GetResult();
        try
        {
            while (Console.ReadLine() is { } line)
            {
                string answer;
                try
                {
                    answer = line.Split(' ', StringSplitOptions.RemoveEmptyEntries) switch
                    {
                        ["ready"] => "ok",
                        ["seed", var i, var prefix] => Done(() => standIn.Seed(int.Parse(i), prefix)),
                        ["clear"] => Done(standIn.Clear),
                        ["run", var i, var prefix] => $"ok {standIn.Run(int.Parse(i), prefix)}",
                        ["remove", var i, var prefix] => $"ok {standIn.Remove(int.Parse(i), prefix)}",
                        ["requests"] => $"ok {standIn.Requests}",
                        _ => "error unknown command",
                    };
                }
                catch (Exception e) when (e is FormatException or OverflowException) { answer = "error " + e.Message; }
                Console.Out.WriteLine(answer);
                Console.Out.Flush();
            }
            return 0;
        }
        finally { standIn.DisposeAsync().AsTask().GetAwaiter().GetResult(); }

        static string Done(Action action)
        {
            action();
            return "ok";
        }
    }

    /// <summary>Container <paramref name="index"/> running from the start (no events).</summary>
    public void Seed(int index, string prefix = "ad")
    {
        var id = LongId(index, prefix);
        lock (gate) containers[id] = new Container(index, id, true);
    }

    /// <summary>No containers (events stay: a later `since` replays them).</summary>
    public void Clear()
    {
        lock (gate) containers.Clear();
    }

    public static string LongId(int index, string prefix = "ad") => (prefix + Synthetic.Id(index, "")).PadRight(64, '0');

    /// <summary>What dockerd does for `docker run`: create, network connect (the address is
    /// assigned), start. Returns the `network connect` event's timestamp (Unix ns).</summary>
    public long Run(int index, string prefix = "ad")
    {
        var id = LongId(index, prefix);
        lock (gate) containers[id] = new Container(index, id, false);
        Emit("container", "create", id, ContainerAttributes(index, id));
        lock (gate) containers[id] = new Container(index, id, true);
        var connected = Emit("network", "connect", NetworkId, new JsonObject { ["container"] = id, ["name"] = NetworkName, ["type"] = "bridge" });
        Emit("container", "start", id, ContainerAttributes(index, id));
        return connected;
    }

    /// <summary>What dockerd does for `docker stop` + `docker rm`: die (the endpoint is gone),
    /// network disconnect, stop, destroy. Returns the `die` event's timestamp (Unix ns).</summary>
    public long Remove(int index, string prefix = "ad")
    {
        var id = LongId(index, prefix);
        lock (gate) containers[id] = new Container(index, id, false);
        var died = Emit("container", "die", id, ContainerAttributes(index, id, new() { ["exitCode"] = "0" }));
        Emit("network", "disconnect", NetworkId, new JsonObject { ["container"] = id, ["name"] = NetworkName, ["type"] = "bridge" });
        Emit("container", "stop", id, ContainerAttributes(index, id));
        lock (gate) containers.Remove(id);
        Emit("container", "destroy", id, ContainerAttributes(index, id));
        return died;
    }

    private static JsonObject ContainerAttributes(int index, string id, Dictionary<string, string>? extra = null)
    {
        var a = new JsonObject { ["image"] = "busybox", ["name"] = $"bench-{index}" };
        foreach (var (k, v) in Synthetic.Labels(index)) a[k] = v;
        foreach (var (k, v) in extra ?? []) a[k] = v;
        return a;
    }

    private long Emit(string type, string action, string actorId, JsonObject attributes)
    {
        lock (gate)
        {
            // strictly increasing, as dockerd's are for one stream
            var now = Math.Max(Clock.UnixNanos(), log.Count > 0 ? (long)log[^1]["timeNano"]! + 1 : 0);
            var e = new JsonObject
            {
                ["Type"] = type,
                ["Action"] = action,
                ["Actor"] = new JsonObject { ["ID"] = actorId, ["Attributes"] = attributes },
                ["scope"] = "local",
                ["time"] = now / 1_000_000_000,
                ["timeNano"] = now,
            };
            if (type == "container")
            {
                e["status"] = action;
                e["id"] = actorId;
                e["from"] = "busybox";
            }
            log.Add(e);
            var json = e.ToJsonString();
            foreach (var s in subscribers) s.Writer.TryWrite((now, type, json));
            return now;
        }
    }

    private async Task StreamEventsAsync(HttpContext http)
    {
        var since = ParseSince(http.Request.Query["since"]);
        var types = ParseTypes(http.Request.Query["filters"]);
        var channel = Channel.CreateUnbounded<(long TimeNano, string Type, string Json)>(new UnboundedChannelOptions { SingleReader = true });
        lock (gate)
        {
            foreach (var e in log)
                if ((long)e["timeNano"]! >= since) channel.Writer.TryWrite(((long)e["timeNano"]!, (string)e["Type"]!, e.ToJsonString()));
            subscribers.Add(channel);
        }
        http.Response.ContentType = "application/json";
        http.Response.StatusCode = 200;
        try
        {
            await http.Response.StartAsync(http.RequestAborted);
            await http.Response.Body.FlushAsync(http.RequestAborted);
            await foreach (var (_, type, json) in channel.Reader.ReadAllAsync(http.RequestAborted))
            {
                if (types is not null && !types.Contains(type)) continue;
                await http.Response.WriteAsync(json + "\n", http.RequestAborted);
                await http.Response.Body.FlushAsync(http.RequestAborted);
            }
        }
        catch (OperationCanceledException) { }
        finally { lock (gate) subscribers.Remove(channel); }
    }

    /// <summary>`since` as dockerd takes it: seconds with an optional fraction of nanoseconds.</summary>
    private static long ParseSince(string? since)
    {
        if (string.IsNullOrEmpty(since)) return long.MaxValue; // no replay: from now on
        var parts = since.Split('.');
        var seconds = long.Parse(parts[0]);
        var nanos = parts.Length > 1 ? long.Parse(parts[1].PadRight(9, '0')[..9]) : 0;
        return seconds * 1_000_000_000 + nanos;
    }

    private static HashSet<string>? ParseTypes(string? filters)
    {
        if (string.IsNullOrEmpty(filters)) return null;
        var node = JsonNode.Parse(filters)?["type"];
        return node switch
        {
            JsonObject o => o.Where(kv => kv.Value?.GetValue<bool>() == true).Select(kv => kv.Key).ToHashSet(),
            JsonArray a => a.Select(v => v!.GetValue<string>()).ToHashSet(),
            _ => null,
        };
    }

    private JsonArray ListContainers()
    {
        var list = new JsonArray();
        lock (gate)
            foreach (var c in containers.Values)
                list.Add(new JsonObject
                {
                    ["Id"] = c.Id,
                    ["Names"] = new JsonArray($"/bench-{c.Index}"),
                    ["Image"] = "busybox",
                    ["State"] = c.Running ? "running" : "created",
                    ["Status"] = c.Running ? "Up 1 second" : "Created",
                    ["Labels"] = Labels(c.Index),
                    ["HostConfig"] = new JsonObject { ["NetworkMode"] = NetworkName },
                });
        return list;
    }

    private JsonObject? InspectContainer(string idOrName)
    {
        Container? c;
        lock (gate)
            c = containers.GetValueOrDefault(idOrName) ??
                containers.Values.FirstOrDefault(x => x.Id.StartsWith(idOrName, StringComparison.Ordinal) || $"bench-{x.Index}" == idOrName);
        if (c is null) return null;
        var address = Synthetic.Address(c.Index).ToString();
        return new JsonObject
        {
            ["Id"] = c.Id,
            ["Created"] = "2026-01-01T00:00:00.000000000Z",
            ["Name"] = $"/bench-{c.Index}",
            ["State"] = new JsonObject
            {
                ["Status"] = c.Running ? "running" : "exited",
                ["Running"] = c.Running,
                ["Paused"] = false,
                ["Restarting"] = false,
                ["Pid"] = 0,
                ["ExitCode"] = 0,
            },
            ["Config"] = new JsonObject
            {
                ["Hostname"] = c.Id[..12],
                ["Image"] = "busybox",
                ["Labels"] = Labels(c.Index),
            },
            ["HostConfig"] = new JsonObject
            {
                ["NetworkMode"] = NetworkName,
                // the container's resolver is a test address: the daemon never reads this host's resolv.conf for it
                ["Dns"] = new JsonArray("198.19.0.53"),
            },
            ["NetworkSettings"] = new JsonObject
            {
                ["SandboxKey"] = "",
                ["Ports"] = new JsonObject(),
                ["Networks"] = c.Running
                    ? new JsonObject { [NetworkName] = Endpoint(c, address) }
                    : new JsonObject(),
            },
        };
    }

    private static JsonObject Endpoint(Container c, string address) => new()
    {
        ["NetworkID"] = NetworkId,
        ["EndpointID"] = "e" + c.Id[1..],
        ["Gateway"] = "198.18.0.1",
        ["IPAddress"] = address,
        ["IPPrefixLen"] = 16,
        ["IPv6Gateway"] = "",
        ["GlobalIPv6Address"] = "",
        ["GlobalIPv6PrefixLen"] = 0,
        ["MacAddress"] = Mac(c.Index),
    };

    private static string Mac(int index)
    {
        var b = Synthetic.Address(index).GetAddressBytes();
        return $"02:42:{b[0]:x2}:{b[1]:x2}:{b[2]:x2}:{b[3]:x2}";
    }

    private JsonObject Network(bool withContainers)
    {
        var members = new JsonObject();
        if (withContainers)
            lock (gate)
                foreach (var c in containers.Values.Where(c => c.Running))
                    members[c.Id] = new JsonObject
                    {
                        ["Name"] = $"bench-{c.Index}",
                        ["EndpointID"] = "e" + c.Id[1..],
                        ["MacAddress"] = Mac(c.Index),
                        ["IPv4Address"] = Synthetic.Address(c.Index) + "/16",
                        ["IPv6Address"] = "",
                    };
        return new JsonObject
        {
            ["Name"] = NetworkName,
            ["Id"] = NetworkId,
            ["Created"] = "2026-01-01T00:00:00.000000000Z",
            ["Scope"] = "local",
            ["Driver"] = "bridge",
            ["EnableIPv6"] = false,
            ["IPAM"] = new JsonObject
            {
                ["Driver"] = "default",
                ["Config"] = new JsonArray(new JsonObject { ["Subnet"] = "198.18.0.0/16", ["Gateway"] = "198.18.0.1" }),
            },
            ["Internal"] = false,
            ["Attachable"] = false,
            ["Containers"] = members,
            // a bridge that does not exist in the daemon's namespace: binding finds no port (stays unbound)
            ["Options"] = new JsonObject { ["com.docker.network.bridge.name"] = "wwbsd0" },
            ["Labels"] = new JsonObject(),
        };
    }

    private static JsonObject Labels(int index)
    {
        var o = new JsonObject();
        foreach (var (k, v) in Synthetic.Labels(index)) o[k] = v;
        return o;
    }

    private static IResult Json(JsonNode node) => Results.Text(node.ToJsonString(), "application/json");

    private static IResult NotFound(string message) =>
        Results.Text(new JsonObject { ["message"] = message }.ToJsonString(), "application/json", statusCode: 404);

    public async ValueTask DisposeAsync()
    {
        lock (gate)
            foreach (var s in subscribers) s.Writer.TryComplete();
        using (var stop = new CancellationTokenSource(TimeSpan.FromSeconds(5))) await app.StopAsync(stop.Token);
        await app.DisposeAsync();
        try { File.Delete(SocketPath); } catch (IOException) { }
    }
}
