using System.CommandLine;
using System.Text.Json.Nodes;
using Akka.Actor;
using WhaleWall.Actors.Flows;
using WhaleWall.Firewall;
using WhaleWall.Actors.Metrics;
using WhaleWall.Firewall.Check;
using WhaleWall.Firewall.Explain;
using WhaleWall.Firewall.Kernel;
using WhaleWall.Firewall.Nft;
using WhaleWall.Firewall.Flows;
using WhaleWall.Firewall.Labels;

namespace WhaleWall.Host;

/// <summary>`whalewall suggest CONTAINER|SERVICE`: the <c>whalewall.rules</c> that allow exactly
/// the flows recorded for it (audit mode or <c>whalewall.learn=true</c>), read from the journal
/// (<see cref="FlowRecorderActor"/>). Exit 0 with rules, 1 when nothing was recorded for the
/// name or it is ambiguous, 2 on usage errors.</summary>
public static class SuggestCommand
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    public static Command Create()
    {
        var name = new Argument<string>("name") { Description = "A container name, a compose service, or PROJECT/SERVICE" };
        var json = new Option<bool>("--json") { Description = "Machine-readable: the rules and the flows they come from" };
        var compose = new Option<FileInfo?>("--compose") { Description = "Write the labels into this compose file's service (shows the diff first)" };
        var service = new Option<string?>("--service") { Description = "With --compose: the service to write to (default: the recorded compose service)" };
        var dryRun = new Option<bool>("--dry-run") { Description = "With --compose: show the diff, write nothing" };
        var unused = new Option<bool>("--unused") { Description = "Instead: list the rules of the enforced container that matched nothing (kernel counters)" };
        var period = new Option<string?>("--for") { Description = "With --unused: watch this long (e.g. 90s, 10m, 2h) instead of since the rules were put in place" };
        var command = new Command("suggest", "Print the whalewall.rules that allow exactly what a container (or compose service) was seen doing")
            { name, json, compose, service, dryRun, unused, period };
        command.SetAction(parse => parse.GetValue(unused)
            ? Unused(parse.GetValue(name)!, parse.GetValue(period), parse.GetValue(json))
            : Run(parse.GetValue(name)!, parse.GetValue(json), parse.GetValue(compose), parse.GetValue(service), parse.GetValue(dryRun)));
        return command;
    }

    private static async Task<int> Run(string name, bool json, FileInfo? compose, string? service, bool dryRun)
    {
        Options options;
        try { options = Options.FromEnvironment(); }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine($"whalewall: {e.Message}");
            return 2;
        }
        var log = await ReadAsync(options);
        var owners = log.Find(name);
        if (owners.Count == 0)
        {
            Console.Error.WriteLine($"whalewall suggest: no flows recorded for \"{SafeText.Escape(name, 100)}\" on node {options.Node} " +
                "(flows are recorded for containers in audit mode, whalewall.mode=audit or WHALEWALL_MODE=audit, or labelled whalewall.learn=true)");
            return 1;
        }
        if (owners.Count > 1)
        {
            Console.Error.WriteLine($"whalewall suggest: \"{SafeText.Escape(name, 100)}\" names {owners.Count} owners: " +
                $"{string.Join(", ", owners.Select(o => o.Owner))}; give one of them");
            return 1;
        }
        var owner = owners[0];
        var wildcards = options.Proxy?.Enabled ?? false;
        var rules = Suggestion.Rules(owner.Flows.Keys, wildcards);
        // what it prints must be what the daemon accepts
        var check = LabelParser.ParseRules(rules, wildcards);
        if (!check.Errors.IsEmpty)
        {
            Console.Error.WriteLine($"whalewall suggest: internal error, the suggested rules do not parse: {string.Join("; ", check.Errors)}");
            return 1;
        }
        if (compose is not null) return WriteCompose(compose, service ?? owner.Service, rules, dryRun);
        if (json)
        {
            Console.WriteLine(new JsonObject
            {
                ["owner"] = owner.Owner,
                ["rules"] = rules,
                ["recorded"] = FlowJson.Write(owner),
            }.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
            return 0;
        }
        Console.Write(Header(owner) + rules);
        return 0;
    }

    /// <summary>`--unused`: the rules of the container (as the running daemon reports it) whose
    /// kernel elements counted no packet, since they were put in place or, with
    /// <paramref name="period"/>, during that period (two readings of the counters).</summary>
    private static async Task<int> Unused(string name, string? period, bool json)
    {
        Options options;
        try { options = Options.FromEnvironment(); }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine($"whalewall: {e.Message}");
            return 2;
        }
        TimeSpan? watch = null;
        if (period is not null)
        {
            if (Duration(period) is not { } d)
            {
                Console.Error.WriteLine($"whalewall suggest: --for \"{SafeText.Escape(period, 40)}\" must be a duration like 90s, 10m or 2h");
                return 2;
            }
            watch = d;
        }
        var report = DaemonReportFile.Read(Path.Combine(options.DataDir, DaemonReportFile.FileName));
        if (report?["containers"] is not JsonArray entries)
        {
            Console.Error.WriteLine($"whalewall suggest: no report of a running daemon in {options.DataDir}");
            return 2;
        }
        var all = ExplainCommand.Online(entries);
        var self = all.Find(c => ExplainCommand.Named(c.Facts, name));
        if (self.Facts is null)
        {
            Console.Error.WriteLine($"whalewall suggest: the daemon knows no container \"{SafeText.Escape(name, 80)}\"");
            return 1;
        }
        var others = all.Select(c => c.Facts).Where(f => f.Id != self.Facts.Id).ToList();
        var decisionNotes = new List<string>();
        var context = ExplainCommand.DaemonContext(report, options.Decision, decisionNotes);
        foreach (var n in decisionNotes) Console.Error.WriteLine("note: " + n);
        using var nft = new LibNftables();
        var before = RuleUsage.Of(context, self.Facts, others, ReadCounted(nft, options.Table));
        if (before.IsEmpty)
        {
            Console.Error.WriteLine($"whalewall suggest: {self.Facts.Name} is not enforced with valid rules: nothing to measure");
            return 1;
        }
        var hits = before;
        if (watch is { } w)
        {
            Console.Error.WriteLine($"watching {self.Facts.Name}'s counters for {w} ...");
            await Task.Delay(w);
            var after = RuleUsage.Of(context, self.Facts, others, ReadCounted(nft, options.Table));
            hits = [.. after.Zip(before, (a, b) => a with { Packets = a.Packets >= b.Packets ? a.Packets - b.Packets : a.Packets })];
        }
        var since = watch is { } p ? $"in the last {p}" : "since they were put in place";
        if (json)
        {
            Console.WriteLine(new JsonObject
            {
                ["container"] = self.Facts.Name,
                ["period"] = since,
                ["rules"] = new JsonArray([.. hits.Select(h => (JsonNode)new JsonObject
                {
                    ["rule"] = h.Rule,
                    ["path"] = h.Source?.Path,
                    ["line"] = h.Source?.Line,
                    ["packets"] = h.Packets,
                    ["counted"] = h.Counted,
                    ["unused"] = h.Counted && h.Packets == 0,
                    ["note"] = h.Note,
                })]),
            }.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
            return 0;
        }
        var unused = hits.Where(h => h.Counted && h.Packets == 0).ToList();
        Console.WriteLine($"# {self.Facts.Name}: {unused.Count} of {hits.Length} rules matched nothing {since} (kernel counters, new flows)");
        foreach (var h in unused) Console.WriteLine($"unused: {h.Rule}");
        foreach (var h in hits.Where(h => h.Counted && h.Packets > 0)) Console.WriteLine($"used:   {h.Rule}: {h.Packets} packets");
        foreach (var h in hits.Where(h => !h.Counted)) Console.WriteLine($"unknown: {h.Rule}: {h.Note}");
        return 0;
    }

    /// <summary>The counted allow sets of WhaleWall's table (its own only).</summary>
    private static List<ListedElement> ReadCounted(LibNftables nft, string table)
    {
        var all = new List<ListedElement>();
        foreach (var set in new[] { "out4", "out6", "outh4", "outh6", "pub4", "pub6", "local4", "local6" }
                     .SelectMany(NftPlacement.PhysicalSets))
        {
            var listing = nft.Run(NftJson.ListSet(table, set));
            if (listing.Ok) all.AddRange(NftElementFields.Read(listing.Output));
        }
        return all;
    }

    public static TimeSpan? Duration(string text)
    {
        text = text.Trim();
        if (text.Length < 2 || !int.TryParse(text[..^1], System.Globalization.NumberStyles.None, null, out var n) || n <= 0) return null;
        return text[^1] switch
        {
            's' => TimeSpan.FromSeconds(n),
            'm' => TimeSpan.FromMinutes(n),
            'h' => TimeSpan.FromHours(n),
            'd' => TimeSpan.FromDays(n),
            _ => null,
        };
    }

    /// <summary>Sets <c>whalewall.enabled</c> and <c>whalewall.rules</c> on the service, in the
    /// form the file has (<see cref="ComposeLabels"/>), after printing the diff; the file is
    /// replaced atomically, keeping its mode.</summary>
    private static int WriteCompose(FileInfo file, string? service, string rules, bool dryRun)
    {
        if (service is null)
        {
            Console.Error.WriteLine("whalewall suggest: the flows are a container's, not a compose service's: say which service with --service");
            return 2;
        }
        if (!file.Exists)
        {
            Console.Error.WriteLine($"whalewall suggest: {file.FullName} does not exist");
            return 2;
        }
        var text = File.ReadAllText(file.FullName);
        var result = ComposeLabels.Set(text, service, [new(LabelKeys.Enabled, "true"), new(LabelKeys.Rules, rules)]);
        if (result.Error is { } error)
        {
            Console.Error.WriteLine($"whalewall suggest: cannot write {file.Name}: {error}");
            return 1;
        }
        var diff = UnifiedDiff.Render(text, result.Text!, "a/" + file.Name, "b/" + file.Name);
        if (diff.Length == 0)
        {
            Console.WriteLine($"{file.Name}: service {service} already has these labels");
            return 0;
        }
        Console.Write(diff);
        if (dryRun) return 0;
        var temp = file.FullName + ".whalewall.tmp";
        File.WriteAllText(temp, result.Text!);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(temp, File.GetUnixFileMode(file.FullName));
        File.Move(temp, file.FullName, overwrite: true);
        Console.WriteLine($"wrote {file.FullName}: service {service} labelled (recreate it to apply: docker compose up -d {service})");
        return 0;
    }

    /// <summary>YAML comments: what the rules come from (they stay harmless inside the label).</summary>
    public static string Header(OwnerFlows owner)
    {
        var all = owner.Flows.Values.ToList();
        var w = new StringWriter();
        var who = owner.Service is { } s ? $"compose service {owner.Project}/{s}" : "container";
        w.WriteLine($"# whalewall suggest {SafeText.Escape(owner.Owner, 100)} ({who}; containers {SafeText.Escape(string.Join(", ", owner.Containers), 200)})");
        if (all.Count > 0)
            w.WriteLine($"# {owner.Flows.Count} destinations, {all.Sum(f => f.Count)} new flows seen " +
                        $"{DateTimeOffset.FromUnixTimeMilliseconds(all.Min(f => f.FirstMs)):u} .. {DateTimeOffset.FromUnixTimeMilliseconds(all.Max(f => f.LastMs)):u}, " +
                        $"{all.Sum(f => f.AuditDrops)} of them would have been dropped by the current rules");
        else w.WriteLine("# no flow seen: nothing to allow");
        if (owner.Overflow > 0)
            w.WriteLine($"# WARNING: {owner.Overflow} flows to further destinations were not recorded (limit {FlowLimits.Default.PerOwner} per owner): these rules are incomplete");
        return w.ToString();
    }

    /// <summary>The flows as the journal holds them (the daemon journals what it learns every second).</summary>
    public static async Task<FlowLog> ReadAsync(Options options) =>
        (await StateCommands.WithStoreAsync(options, FlowRecorderActor.Props(options.Node, open: null), reader =>
            reader.Ask<FlowEvents.Log>(FlowCommands.Get.Instance, Timeout))).Flows;
}
