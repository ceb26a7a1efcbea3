# frozen_string_literal: true

require "base64"
require "json"
require "tmpdir"
require "fileutils"
require "io/nonblock"

module SpecSupport
  # Headless Chromium (Debian's package) driven over the DevTools protocol on a pipe
  # (--remote-debugging-pipe: commands on fd 3, answers and events on fd 4, each message JSON ended
  # by a NUL byte), so no driver gem and no websocket are needed.
  class Chromium
    BINARIES = %w[chromium chromium-browser google-chrome].freeze
    # Debian's /usr/bin/chromium is a shell wrapper; the browser itself is started directly.
    DEBIAN_BINARY = "/usr/lib/chromium/chromium"

    def self.binary
      return DEBIAN_BINARY if File.executable?(DEBIAN_BINARY)

      BINARIES.each do |name|
        ENV["PATH"].split(File::PATH_SEPARATOR).each do |dir|
          path = File.join(dir, name)
          return path if File.executable?(path)
        end
      end
      nil
    end

    def initialize(log_path:, width: 1280, height: 900)
      binary = self.class.binary or raise "no Chromium found (bin/setup installs Debian's chromium package)"
      @profile = Dir.mktmpdir("tasker-chromium")
      to_chrome, @commands = IO.pipe
      @answers, from_chrome = IO.pipe
      # Ruby opens pipes non-blocking; the browser reads and writes its ends as blocking ones.
      to_chrome.nonblock = false
      from_chrome.nonblock = false
      # The browser never inherits a preloaded library (rake asan preloads its runtime for Ruby).
      @pid = Process.spawn({ "LD_PRELOAD" => nil }, binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                           "--remote-debugging-pipe", "--user-data-dir=#{@profile}", "--window-size=#{width},#{height}",
                           "--hide-scrollbars", "about:blank",
                           3 => to_chrome, 4 => from_chrome, in: File::NULL, out: log_path, err: log_path)
      to_chrome.close
      from_chrome.close
      @id = 0
      @buffer = +""
      target = command("Target.createTarget", url: "about:blank")["targetId"]
      @session = command("Target.attachToTarget", targetId: target, flatten: true)["sessionId"]
      page("Page.enable")
      page("Runtime.enable")
      page("Emulation.setDeviceMetricsOverride", width: width, height: height, deviceScaleFactor: 1, mobile: false)
    end

    # A command to the browser; returns its result (raises on an error answer).
    def command(method, session: nil, **params)
      id = (@id += 1)
      message = { id: id, method: method, params: params }
      message[:sessionId] = session if session
      @commands.write("#{JSON.generate(message)}\0")
      @commands.flush
      loop do
        answer = read_message
        next unless answer["id"] == id
        raise "#{method} failed: #{answer['error']}" if answer["error"]

        return answer["result"]
      end
    end

    # A command to the page.
    def page(method, **params) = command(method, session: @session, **params)

    def visit(url)
      page("Page.navigate", url: url)
      wait_for("document.readyState === 'complete' && location.href !== 'about:blank'")
    end

    # The value of a JavaScript expression in the page (promises awaited).
    def evaluate(expression)
      result = page("Runtime.evaluate", expression: expression, returnByValue: true, awaitPromise: true)
      raise "JavaScript failed: #{result['exceptionDetails']}" if result["exceptionDetails"]

      result.dig("result", "value")
    end

    # Waits until expression is truthy in the page (a page being replaced answers nothing for a
    # moment: that counts as not yet).
    def wait_for(expression, timeout: 30)
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
      loop do
        value = begin
          evaluate(expression)
        rescue RuntimeError
          nil
        end
        return value if value
        raise "not true within #{timeout}s: #{expression}" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

        sleep 0.05
      end
    end

    def screenshot(path)
      FileUtils.mkdir_p(File.dirname(path))
      height = evaluate("Math.ceil(document.documentElement.scrollHeight)")
      data = page("Page.captureScreenshot", format: "png", captureBeyondViewport: true,
                                            clip: { x: 0, y: 0, width: 1280, height: [height, 2400].min, scale: 1 })["data"]
      File.binwrite(path, Base64.decode64(data))
    end

    def close
      begin
        command("Browser.close")
      rescue StandardError
        nil
      end
      Process.kill("KILL", @pid) unless wait_exit(5)
      Process.wait(@pid) unless wait_exit(0)
    rescue Errno::ESRCH, Errno::ECHILD
      nil
    ensure
      @commands.close unless @commands.closed?
      @answers.close unless @answers.closed?
      FileUtils.rm_rf(@profile)
    end

    private

    def wait_exit(timeout)
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
      loop do
        return true if Process.wait(@pid, Process::WNOHANG)
        return false if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

        sleep 0.05
      end
    rescue Errno::ECHILD
      true
    end

    def read_message
      until (nul = @buffer.index("\0"))
        @buffer << @answers.readpartial(1 << 16)
      end
      JSON.parse(@buffer.slice!(0, nul + 1).chop)
    end
  end
end
