namespace WhaleWall.Bench;

/// <summary>The table the bench prints: one row per figure, each measured in this run.</summary>
public sealed class Report
{
    public sealed record Row(string Figure, string Value, string Target, string Verdict);

    private readonly List<Row> rows = new();

    /// <summary>Off in --short mode: its figures are too small to judge a target by.</summary>
    public bool Verdicts { get; set; } = true;
    private readonly List<string> notes = new();

    public void Add(string figure, string value, string target = "", bool? met = null) =>
        rows.Add(new Row(figure, value, target, (Verdicts ? met : null) switch { true => "met", false => "MISSED", null => "" }));

    public void Note(string note) => notes.Add(note);

    public IReadOnlyList<Row> Rows => rows;

    public string Render(string header)
    {
        var w = new StringWriter();
        w.WriteLine(header);
        w.WriteLine();
        w.WriteLine("| figure | measured | target | |");
        w.WriteLine("|---|---|---|---|");
        foreach (var r in rows)
            w.WriteLine($"| {r.Figure} | {r.Value} | {r.Target} | {r.Verdict} |");
        if (notes.Count > 0)
        {
            w.WriteLine();
            foreach (var n in notes) w.WriteLine($"- {n}");
        }
        return w.ToString();
    }
}
