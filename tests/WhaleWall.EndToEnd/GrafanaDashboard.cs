using System.Text.Json;
using System.Text.RegularExpressions;
using Xunit;

namespace WhaleWall.EndToEnd;

/// <summary>deploy/grafana/whalewall.json as the tests read it: every panel target's query, the
/// templating variables' queries, and Grafana's substitution of template variables into a
/// Prometheus query.</summary>
public static class GrafanaDashboard
{
    public sealed record Target(string Panel, string RefId, string Expr);

    public sealed record Variable(string Name, string Query, string? AllValue);

    public static JsonDocument Load()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "deploy", "grafana", "whalewall.json"))) dir = dir.Parent;
        Assert.NotNull(dir);
        return JsonDocument.Parse(File.ReadAllText(Path.Combine(dir!.FullName, "deploy", "grafana", "whalewall.json")));
    }

    /// <summary>Every "expr"/"query" string that names a metric (panels, nested rows, templating).</summary>
    public static List<string> AllQueries()
    {
        using var doc = Load();
        var found = new List<string>();
        void Walk(JsonElement e)
        {
            if (e.ValueKind == JsonValueKind.Object)
                foreach (var p in e.EnumerateObject())
                {
                    if (p.Name is "expr" or "query" && p.Value.ValueKind == JsonValueKind.String && p.Value.GetString() is { Length: > 0 } q &&
                        q.Contains('_')) found.Add(q);
                    else Walk(p.Value);
                }
            else if (e.ValueKind == JsonValueKind.Array)
                foreach (var x in e.EnumerateArray()) Walk(x);
        }
        Walk(doc.RootElement);
        return found;
    }

    /// <summary>Every target of every panel (rows' nested panels included).</summary>
    public static List<Target> Targets()
    {
        using var doc = Load();
        var found = new List<Target>();
        void Panels(JsonElement panels)
        {
            foreach (var p in panels.EnumerateArray())
            {
                var title = p.TryGetProperty("title", out var t) ? t.GetString() ?? "" : "";
                if (p.TryGetProperty("targets", out var targets))
                    foreach (var x in targets.EnumerateArray())
                        if (x.TryGetProperty("expr", out var expr) && expr.GetString() is { Length: > 0 } e)
                            found.Add(new Target(title, x.TryGetProperty("refId", out var r) ? r.GetString() ?? "" : "", e));
                if (p.TryGetProperty("panels", out var nested)) Panels(nested);
            }
        }
        Panels(doc.RootElement.GetProperty("panels"));
        return found;
    }

    /// <summary>The query variables of the templating list.</summary>
    public static List<Variable> Variables()
    {
        using var doc = Load();
        return doc.RootElement.GetProperty("templating").GetProperty("list").EnumerateArray()
            .Where(v => v.GetProperty("type").GetString() == "query")
            .Select(v => new Variable(v.GetProperty("name").GetString()!, v.GetProperty("query").GetString()!,
                v.TryGetProperty("allValue", out var a) ? a.GetString() : null))
            .ToList();
    }

    private static readonly Regex Label_values = new(@"^label_values\((?<selector>.*),\s*(?<label>[a-zA-Z_][a-zA-Z0-9_]*)\)$");

    /// <summary>label_values(selector, label) split as Grafana's Prometheus data source does.</summary>
    public static (string Selector, string Label) LabelValues(string query)
    {
        var m = Label_values.Match(query.Trim());
        Assert.True(m.Success, $"not a label_values(selector, label) query: {query}");
        return (m.Groups["selector"].Value, m.Groups["label"].Value);
    }

    /// <summary>"All" of a multi-value variable as Grafana's Prometheus data source writes it into
    /// a regex matcher: the allValue if the variable has one, else every value escaped
    /// (prometheusSpecialRegexEscape: a backslash pair before each regex metacharacter) and
    /// joined as (a|b).</summary>
    public static string AllOf(IReadOnlyList<string> values, string? allValue)
    {
        if (allValue is not null) return allValue;
        var escaped = values.Select(v => Regex.Replace(v.Replace("\\", "\\\\\\\\"), @"[$^*{}\[\]'+?.()|]", m => "\\\\" + m.Value)).ToList();
        return escaped.Count == 1 ? escaped[0] : "(" + string.Join("|", escaped) + ")";
    }

    /// <summary>Grafana's $__rate_interval: max($__interval + scrape interval, 4 x scrape
    /// interval), with $__interval at its floor, the data source's scrape interval.</summary>
    public static string RateInterval(TimeSpan scrapeInterval) =>
        $"{(long)Math.Max((scrapeInterval + scrapeInterval).TotalSeconds, 4 * scrapeInterval.TotalSeconds)}s";

    private static readonly Regex VariableRef = new(@"\$\{(?<n>\w+)(?::\w+)?\}|\$(?<n>\w+)|\[\[(?<n>\w+)\]\]");

    /// <summary>Replaces $name, ${name} and [[name]] by their values; a reference to a variable
    /// not in <paramref name="values"/> stays (and the caller's check for '$' catches it).</summary>
    public static string Substitute(string expr, IReadOnlyDictionary<string, string> values) =>
        VariableRef.Replace(expr, m => values.TryGetValue(m.Groups["n"].Value, out var v) ? v : m.Value);
}
