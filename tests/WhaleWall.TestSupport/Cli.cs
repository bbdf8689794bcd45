using System.Diagnostics;

namespace WhaleWall.TestSupport;

/// <summary>Runs a command-line tool with extra environment and a time limit, its output
/// appended to a log file (long builds would otherwise fill the test output).</summary>
public static class Cli
{
    public static (int Code, string Out) Run(string logFile, IDictionary<string, string>? env, TimeSpan timeout, string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        if (env is not null) foreach (var (k, v) in env) psi.Environment[k] = v;
        var sw = Stopwatch.StartNew();
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {file}");
        p.StandardInput.Close();
        var output = new System.Text.StringBuilder();
        void Append(string? line) { if (line is not null) lock (output) output.AppendLine(line); }
        p.OutputDataReceived += (_, e) => Append(e.Data);
        p.ErrorDataReceived += (_, e) => Append(e.Data);
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        var exited = p.WaitForExit(timeout);
        if (!exited)
        {
            E2eProcess.Signal(p.Id, E2eProcess.SIGKILL);
            p.WaitForExit(5000);
        }
        else p.WaitForExit();
        string text;
        lock (output) text = output.ToString();
        File.AppendAllText(logFile, $"==== {DateTime.UtcNow:O} {file} {string.Join(' ', args)} ({sw.Elapsed.TotalSeconds:F1} s, " +
                                    $"{(exited ? "exit " + p.ExitCode : "TIMED OUT")})\n{text}\n");
        return (exited ? p.ExitCode : -1, text);
    }

    public static string RunOk(string logFile, IDictionary<string, string>? env, TimeSpan timeout, string file, params string[] args)
    {
        var (code, output) = Run(logFile, env, timeout, file, args);
        if (code != 0)
            throw new InvalidOperationException($"`{file} {string.Join(' ', args)}` {(code == -1 ? "timed out" : "exited " + code)}:\n{Tail(output, 40)}");
        return output;
    }

    public static string Tail(string text, int lines) =>
        string.Join('\n', text.Split('\n').TakeLast(lines));
}
