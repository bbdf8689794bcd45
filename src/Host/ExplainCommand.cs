using System.Collections.Immutable;
using System.CommandLine;
using WhaleWall.Firewall.Decide;
using System.Net;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using WhaleWall.Actors.Hostnames;
using WhaleWall.Actors.Metrics;
using WhaleWall.Firewall;
using WhaleWall.Firewall.Check;
using WhaleWall.Firewall.Explain;
using WhaleWall.Firewall.Kernel;
using WhaleWall.Firewall.Labels;
using WhaleWall.Firewall.Nft;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Host;

/// <summary>`whalewall explain CONTAINER PROTO DESTINATION PORT [--from SOURCE]`: whether a
/// packet passes and why (<see cref="Explainer"/>). Online (default): the containers as the
/// running daemon reports them (<c>daemon.json</c>, with each container's facts), the daemon's
/// settings from the same environment the daemon reads, the container's DNS answers from the
/// report and the daemon's resolutions (<c>hostnames.json</c>); the elements it names are looked
/// up in WhaleWall's own table (read only). Offline (<c>--label</c> or <c>--compose</c>): the
/// services with placeholder addresses, as <c>check</c> makes them; no daemon, no kernel.
/// Exit 0 when the packet is accepted, 1 when it is dropped (in audit mode too: it passes, but
/// the policy drops it), 2 on usage errors or when there is nothing to explain against.</summary>
public static class ExplainCommand
{
    /// <summary>Whether an element is in the kernel's table: true, false, or null when it
    /// cannot be told (no libnftables, no permission).</summary>
    public delegate bool? KernelLookup(string table, Element element);

    public static Command Create(Func<string, string?>? env = null, TextWriter? stdout = null, TextWriter? stderr = null,
        KernelLookup? kernel = null)
    {
        var args = new Argument<string[]>("CONTAINER PROTO DESTINATION PORT")
        {
            Description = "The container, tcp|udp|icmp|icmpv6, where to (address, host name or container; with --from: the container again, or left out) and the port (for ICMP the type)",
            Arity = new ArgumentArity(3, 4),
        };
        var from = new Option<string?>("--from") { Description = "Ingress: SOURCE (address, container, or host) sends to CONTAINER's PORT" };
        var sport = new Option<ushort?>("--sport") { Description = "The source port (default: any ephemeral port, 32768-60999)" };
        var compose = new Option<FileInfo?>("--compose") { Description = "Offline: the services of a compose file (placeholder addresses)" };
        var service = new Option<string?>("--service") { Description = "With --compose: the service to explain (default: CONTAINER)" };
        var labels = new Option<string[]>("--label") { Description = "Offline: a label key=value of CONTAINER (repeatable)", AllowMultipleArgumentsPerToken = false };
        var networks = new Option<string[]>("--network") { Description = "Offline, with --label: a network NAME[:DRIVER] of CONTAINER (repeatable)", AllowMultipleArgumentsPerToken = false };
        var ports = new Option<string[]>("--publish") { Description = "Offline, with --label: a published port CONTAINER_PORT[/PROTO] (repeatable)", AllowMultipleArgumentsPerToken = false };
        var json = new Option<bool>("--json") { Description = "Machine-readable" };
        var command = new Command("explain", "Whether a packet of a container passes, the rule that decides it and the kernel elements behind it")
            { args, from, sport, compose, service, labels, networks, ports, json };
        command.SetAction(result =>
        {
            var input = new Input(result.GetValue(args) ?? [], result.GetValue(from), result.GetValue(sport), result.GetValue(compose),
                result.GetValue(service), result.GetValue(labels) ?? [], result.GetValue(networks) ?? [], result.GetValue(ports) ?? [], result.GetValue(json));
            var (o, e) = (stdout ?? Console.Out, stderr ?? Console.Error);
            try { return Run(input, env ?? Environment.GetEnvironmentVariable, o, e, kernel ?? InKernel); }
            catch (Exception x) when (x is IOException or UnauthorizedAccessException or ArgumentException)
            {
                e.WriteLine($"whalewall explain: {SafeText.Escape(x.Message)}");
                return 2;
            }
        });
        return command;
    }

    private sealed record Input(string[] Args, string? From, ushort? SourcePort, FileInfo? Compose, string? Service,
        string[] Labels, string[] Networks, string[] Ports, bool Json);

    /// <summary>The query from the arguments, or why they make none.</summary>
    public static (string? Container, ExplainQuery? Query, string? Error) Parse(string[] args, string? from, ushort? sourcePort)
    {
        if (args.Length is < 3 or > 4) return (null, null, "give CONTAINER PROTO DESTINATION PORT (with --from: CONTAINER PROTO PORT)");
        var container = args[0];
        L4Proto? proto = args[1].ToLowerInvariant() switch
        {
            "tcp" => L4Proto.Tcp,
            "udp" => L4Proto.Udp,
            "icmp" => L4Proto.Icmp,
            "icmpv6" or "ipv6-icmp" => L4Proto.Icmpv6,
            _ => null,
        };
        if (proto is null) return (null, null, $"PROTO \"{SafeText.Escape(args[1], 40)}\" must be tcp, udp, icmp or icmpv6");
        string peer;
        if (from is not null)
        {
            if (args.Length == 4 && args[2] != container)
                return (null, null, "with --from the destination is CONTAINER itself: give CONTAINER PROTO PORT --from SOURCE");
            peer = from;
        }
        else if (args.Length == 4) peer = args[2];
        else return (null, null, "give a DESTINATION (or --from SOURCE for traffic to CONTAINER)");
        var portText = args[^1];
        ushort port;
        if (proto is L4Proto.Icmp or L4Proto.Icmpv6)
        {
            if (IcmpSyntax.Parse(portText, proto == L4Proto.Icmpv6) is not { } type)
                return (null, null, $"\"{SafeText.Escape(portText, 40)}\" is not an ICMP type name or number");
            port = type;
        }
        else if (!ushort.TryParse(portText, System.Globalization.NumberStyles.None, null, out port))
            return (null, null, $"PORT \"{SafeText.Escape(portText, 40)}\" must be a number 0-65535");
        if (peer.Length is 0 or > 1024) return (null, null, "the destination or source must be 1-1024 characters");
        return (container, new ExplainQuery(from is null ? Direction.Egress : Direction.Ingress, proto.Value, peer, port, sourcePort), null);
    }

    private static int Run(Input input, Func<string, string?> env, TextWriter stdout, TextWriter stderr, KernelLookup kernel)
    {
        var (name, query, error) = Parse(input.Args, input.From, input.SourcePort);
        if (error is not null)
        {
            stderr.WriteLine($"whalewall explain: {error}");
            return 2;
        }
        var offline = input.Compose is not null || input.Labels.Length > 0;
        if (!offline && (input.Networks.Length > 0 || input.Ports.Length > 0 || input.Service is not null))
        {
            stderr.WriteLine("whalewall explain: --network, --publish and --service describe offline input (--label or --compose)");
            return 2;
        }
        var options = Options.FromEnvironment(env);
        var context = options.Decision;
        var now = DateTimeOffset.UtcNow;

        ExplainInput explainInput;
        var notes = new List<string>();
        if (offline)
        {
            if (OfflineFacts(input, name!, out var self, out var others) is { } problem)
            {
                stderr.WriteLine($"whalewall explain: {problem}");
                return 2;
            }
            explainInput = new ExplainInput(context, self!, others, now);
            notes.Add("offline: kernel not consulted, addresses are placeholders");
        }
        else
        {
            var report = DaemonReportFile.Read(Path.Combine(options.DataDir, DaemonReportFile.FileName));
            if (report?["containers"] is not JsonArray entries)
            {
                stderr.WriteLine($"whalewall explain: no report of a running daemon in {options.DataDir}; explain offline with --label or --compose");
                return 2;
            }
            if (!Daemon_Running(options.DataDir)) notes.Add("the daemon is not running: this is its last report; nobody updates the kernel's rules");
            context = DaemonContext(report, context, notes);
            var all = Online(entries);
            var found = all.FindIndex(c => Named(c.Facts, name!));
            if (found < 0)
            {
                stderr.WriteLine($"whalewall explain: the daemon knows no container \"{SafeText.Escape(name, 80)}\"");
                return 2;
            }
            var self = all[found];
            var lookups = (self.Entry["dns_learned"] as JsonArray ?? []).Take(ExplainInput.MaxLookups).OfType<JsonObject>()
                .Select(Lookup).OfType<DnsLookup>().ToImmutableArray();
            explainInput = new ExplainInput(context, self.Facts, [.. all.Select(c => c.Facts).Where(f => f.Id != self.Facts.Id)], now,
                Resolved(Path.Combine(options.DataDir, HostnameReportFile.FileName)), lookups);
        }

        var explanation = Explainer.Explain(explainInput, query!);
        explanation = explanation with { Notes = explanation.Notes.AddRange(notes) };
        var inKernel = offline ? [] : explanation.Elements.Select(e => (e, kernel(options.Table, e))).ToList();
        if (input.Json)
        {
            var doc = explanation.ToJson();
            doc["offline"] = offline;
            doc["kernel"] = offline ? null : new JsonArray([.. inKernel.Select(k => (JsonNode)new JsonObject
            {
                ["element"] = k.e.ToString(),
                ["present"] = k.Item2,
            })]);
            stdout.WriteLine(doc.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
        }
        else
        {
            var text = explanation.ToText();
            foreach (var (element, present) in inKernel)
                text = text.Replace($"  kernel: {element}\n", $"  kernel: {element} ({Presence(present)})\n");
            stdout.Write(text);
        }
        return explanation.Accepted ? 0 : 1;
    }

    private static string Presence(bool? present) => present switch
    {
        true => "present",
        false => "MISSING from the table",
        null => "not checked",
    };

    private static bool Daemon_Running(string dataDir)
    {
        try { return DaemonLock.IsHeld(dataDir); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return true; }
    }

    /// <summary>Online, the daemon decides with its own settings (its report carries them), not
    /// this shell's: explain with those, and say so when they differ.</summary>
    internal static DecisionContext DaemonContext(JsonObject report, DecisionContext mine, List<string> notes)
    {
        if (DecisionSettings.ContextOf(report["decision"]) is not { } daemons)
        {
            notes.Add("the daemon's report does not say its settings: decided with this shell's environment");
            return mine;
        }
        if (daemons.Describe() != mine.Describe())
            notes.Add($"decided with the daemon's settings ({daemons.Describe()}), not this shell's ({mine.Describe()})");
        return daemons;
    }

    internal static bool Named(ContainerFacts c, string name) =>
        c.Name == name.TrimStart('/') || (name.Length >= 12 && c.Id.StartsWith(name, StringComparison.Ordinal)) || c.ComposeService == name;

    internal static List<(ContainerFacts Facts, JsonObject Entry)> Online(JsonArray entries)
    {
        var result = new List<(ContainerFacts, JsonObject)>();
        foreach (var entry in entries.Take(ExplainInput.MaxOthers + 1).OfType<JsonObject>())
            if (entry["id"] is JsonValue id && id.TryGetValue<string>(out var i) && entry["name"] is JsonValue n && n.TryGetValue<string>(out var nm) &&
                FactsJson.Read(i, nm, entry["facts"]) is { } facts)
                result.Add((facts, entry));
        return result;
    }

    private static DnsLookup? Lookup(JsonObject o) =>
        o["name"] is JsonValue n && n.TryGetValue<string>(out var name) &&
        o["address"] is JsonValue a && a.TryGetValue<string>(out var text) && Addresses.TryParse(text, out var address) &&
        o["expires"] is JsonValue x && x.TryGetValue<string>(out var e) && DateTimeOffset.TryParse(e, out var expires)
            ? new DnsLookup(name, address, expires)
            : null;

    private static Dictionary<string, HostAddresses> Resolved(string path)
    {
        var result = new Dictionary<string, HostAddresses>(StringComparer.Ordinal);
        JsonArray names;
        try { names = HostnameReportFile.Read(path); }
        catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException) { return result; }
        foreach (var entry in names.OfType<JsonObject>())
        {
            if (entry["name"] is not JsonValue n || !n.TryGetValue<string>(out var name)) continue;
            var addresses = (entry["addresses"] as JsonArray ?? []).OfType<JsonObject>()
                .Select(a => a["address"] is JsonValue v && v.TryGetValue<string>(out var t) && Addresses.TryParse(t, out var ip) &&
                             a["expires"] is JsonValue x && x.TryGetValue<string>(out var e) && DateTimeOffset.TryParse(e, out var expires)
                    ? (ip, expires) : ((IPAddress, DateTimeOffset)?)null)
                .OfType<(IPAddress, DateTimeOffset)>().ToImmutableArray();
            result[name] = new HostAddresses(name, addresses);
        }
        return result;
    }

    /// <summary>The offline facts: the compose file's services and/or the container of the
    /// --label flags, with placeholder addresses as `check` gives them.</summary>
    private static string? OfflineFacts(Input input, string name, out ContainerFacts? self, out ImmutableArray<ContainerFacts> others)
    {
        self = null;
        others = [];
        var services = new List<ComposeService>();
        if (input.Compose is { } compose)
        {
            if (!compose.Exists) return $"{compose.FullName} does not exist";
            var parsed = ComposeFile.Parse(File.ReadAllText(compose.FullName), compose.Directory?.Name.ToLowerInvariant() ?? "default");
            if (parsed.Error is { } error) return $"{compose.Name}: {error}";
            services.AddRange(parsed.Services);
        }
        var target = input.Service ?? name;
        if (input.Labels.Length > 0)
        {
            var map = ImmutableDictionary.CreateBuilder<string, string>();
            foreach (var label in input.Labels)
            {
                var eq = label.IndexOf('=');
                if (eq <= 0) return $"--label \"{SafeText.Escape(label, 80)}\" is not key=value";
                map[label[..eq]] = label[(eq + 1)..];
            }
            var published = ImmutableArray.CreateBuilder<PublishedPort>();
            foreach (var p in input.Ports)
            {
                var parts = p.Split('/', 2);
                if (!ushort.TryParse(parts[0], System.Globalization.NumberStyles.None, null, out var port)) return $"--publish \"{SafeText.Escape(p, 40)}\" is not PORT[/tcp|udp]";
                var proto = parts.Length == 1 || parts[1] == "tcp" ? L4Proto.Tcp : parts[1] == "udp" ? L4Proto.Udp : (L4Proto?)null;
                if (proto is null) return $"--publish \"{SafeText.Escape(p, 40)}\" is not PORT[/tcp|udp]";
                published.Add(new PublishedPort(port, proto.Value, "0.0.0.0", port));
            }
            var networks = input.Networks.Length == 0 ? ComposeService.DefaultBridge
                : [.. input.Networks.Select(v => v.Split(':', 2) is [var n, var d] && d.Length > 0 ? new ComposeNetwork(n, d) : new ComposeNetwork(v.TrimEnd(':'), "bridge"))];
            services.RemoveAll(s => s.Name == name);
            services.Add(new ComposeService(name, map.ToImmutable(), published.ToImmutable(), networks, null));
            target = name;
        }
        var facts = CheckReport.Facts(services);
        self = facts.FirstOrDefault(f => f.Name == target);
        if (self is null) return $"no service \"{SafeText.Escape(target, 80)}\" in the offline input";
        var id = self.Id;
        others = [.. facts.Where(f => f.Id != id)];
        return null;
    }

    /// <summary>Asks WhaleWall's own table whether it holds the element (read only). libnftables
    /// 1.0.6 has no JSON form of <c>get element</c>, so the command is text (it falls back to its
    /// text parser); the element's fields are numbers and addresses the compiler made, and the
    /// table name is checked by <see cref="Options"/>. <c>get element</c> finds the element that
    /// holds the key (elements of one set never overlap). It asks the set that holds the element
    /// in the kernel: an exact one sits in its logical set's hash twin (<see cref="NftPlacement"/>).</summary>
    public static string GetElementCommand(string table, Element element) =>
        $"get element inet {table} {element.PhysicalSet} {{ {string.Join(" . ", element.PhysicalFields)} }}";

    private static bool? InKernel(string table, Element element)
    {
        try
        {
            using var nft = new LibNftables();
            return nft.Run(GetElementCommand(table, element)).Ok;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or InvalidOperationException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
