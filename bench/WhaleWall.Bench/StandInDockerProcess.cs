using System.Diagnostics;
using WhaleWall.TestSupport;

namespace WhaleWall.Bench;

/// <summary><see cref="StandInDocker"/> in a process of its own: this bench's executable with
/// <c>--stand-in-docker SOCKET</c>, driven one line per command over its stdin and stdout (see
/// <see cref="StandInDocker.Serve"/>). dockerd is a process of its own too; in the bench's
/// process the stand-in's answers (a network inspect of 1,000 endpoints is ~250 KB of JSON, built
/// and serialized per request) took heap, GC pauses and thread-pool time from the churners and
/// from the thread that timestamps the kernel's notifications.</summary>
public sealed class StandInDockerProcess : IDisposable
{
    private readonly Process process;
    private readonly object gate = new();
    private bool disposed;

    public string SocketPath { get; }
    public string DockerHost => "unix://" + SocketPath;
    public int Pid => process.Id;

    private StandInDockerProcess(Process process, string socketPath)
    {
        this.process = process;
        SocketPath = socketPath;
    }

    /// <summary>Started and serving (its first answer comes once the socket listens); its stderr
    /// goes to <paramref name="logFile"/>.</summary>
    public static StandInDockerProcess Start(string socketPath, string logFile)
    {
        var psi = new ProcessStartInfo("/bin/sh")
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
        };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("exec \"$@\" 2>>\"$STANDIN_LOG\"");
        psi.ArgumentList.Add("sh");
        psi.ArgumentList.Add(Environment.ProcessPath ?? throw new InvalidOperationException("no path to this bench's executable"));
        if (Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet")
            psi.ArgumentList.Add(typeof(StandInDockerProcess).Assembly.Location);
        psi.ArgumentList.Add("--stand-in-docker");
        psi.ArgumentList.Add(socketPath);
        psi.Environment["STANDIN_LOG"] = logFile;
        var process = Process.Start(psi) ?? throw new InvalidOperationException("cannot start the stand-in Docker API");
        var standIn = new StandInDockerProcess(process, socketPath);
        Cleanup.Register("stand-in docker process " + process.Id, standIn.Dispose);
        standIn.Call("ready");
        return standIn;
    }

    public void Seed(int index, string prefix = "ad") => Call($"seed {index} {prefix}");
    public void Clear() => Call("clear");
    /// <summary>As <see cref="StandInDocker.Run"/>: the `network connect` event's timestamp.</summary>
    public long Run(int index, string prefix = "ad") => long.Parse(Call($"run {index} {prefix}"));
    /// <summary>As <see cref="StandInDocker.Remove"/>: the `die` event's timestamp.</summary>
    public long Remove(int index, string prefix = "ad") => long.Parse(Call($"remove {index} {prefix}"));
    public int Requests => int.Parse(Call("requests"));

    /// <summary>One command, one answer line: <c>ok [value]</c> or <c>error message</c>.</summary>
    private string Call(string command)
    {
        lock (gate)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            process.StandardInput.WriteLine(command);
            process.StandardInput.Flush();
            var answer = process.StandardOutput.ReadLine()
                ?? throw new InvalidOperationException($"the stand-in Docker API (pid {process.Id}) ended; its log says why");
            if (answer == "ok") return "";
            if (answer.StartsWith("ok ", StringComparison.Ordinal)) return answer[3..];
            throw new InvalidOperationException($"stand-in Docker API: {command}: {answer}");
        }
    }

    /// <summary>Its stdin closed, it stops serving and ends; killed (by its pid) if it has not
    /// within 10 s.</summary>
    public void Dispose()
    {
        lock (gate)
        {
            if (disposed) return;
            disposed = true;
            try { process.StandardInput.Close(); } catch (IOException) { }
        }
        if (!process.WaitForExit(10_000))
            E2eProcess.TerminateAsync(process.Id, TimeSpan.FromSeconds(2)).GetAwaiter().GetResult();
        process.Dispose();
    }
}
