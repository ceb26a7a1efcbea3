# frozen_string_literal: true

require "json"
require "net/http"
require "openssl"
require "time"
require "uri"

module TaskerCore
  module StepHandler
    # Base class of steps that call an HTTP API. The connection comes from the step's
    # handler.initialization (or class defaults): base_url (or url), headers, open_timeout,
    # read_timeout (seconds; timeout sets both). Responses are classified (SPEC 4.5): 2xx/3xx
    # return a Response; 400, 401, 403, 404 and 422 raise PermanentError (NotFoundError for 404);
    # 429 and 5xx raise RetryableError honouring Retry-After; other 4xx raise PermanentError;
    # connection failures and timeouts raise NetworkError / TimeoutError (retryable).
    #
    #   class FetchInventory < TaskerCore::StepHandler::Api
    #     def call(context)
    #       response = get("/inventory", params: { sku: context.get_input("sku") })
    #       success(response.json)
    #     end
    #   end
    class Api < Base
      Response = Struct.new(:status, :headers, :body, keyword_init: true) do
        def json
          body.nil? || body.empty? ? nil : JSON.parse(body)
        rescue JSON::ParserError => e
          raise Errors::PermanentError.new("the API answered with invalid JSON: #{e.message}", error_code: "INVALID_JSON")
        end

        def success? = status.between?(200, 299)
      end

      PERMANENT_STATUSES = [400, 401, 403, 404, 422].freeze
      # How much of an error response's body its error context keeps (as valid UTF-8 text).
      BODY_KEPT_BYTES = 500

      class << self
        attr_writer :base_url, :default_headers

        def base_url = @base_url
        def default_headers = @default_headers || {}
      end

      # handler.initialization's base_url (or url), or the class's; ${VAR} and ${VAR:-default} are
      # read from the environment at each request, as in headers.
      def base_url
        url = config["base_url"] || config["url"] || self.class.base_url
        raise Errors::ConfigurationError, "#{self.class.name} has no base_url (handler.initialization.base_url)" unless url

        expand_env(url, "base_url")
      end

      def get(path, params: {}, headers: {}) = request(Net::HTTP::Get, path, params: params, headers: headers)
      def delete(path, params: {}, headers: {}) = request(Net::HTTP::Delete, path, params: params, headers: headers)
      def post(path, body: nil, headers: {}) = request(Net::HTTP::Post, path, body: body, headers: headers)
      def put(path, body: nil, headers: {}) = request(Net::HTTP::Put, path, body: body, headers: headers)
      def patch(path, body: nil, headers: {}) = request(Net::HTTP::Patch, path, body: body, headers: headers)

      # The connection (this handler): seed 002's `connection.get(...)` style.
      def connection = self

      private

      def request(verb, path, params: {}, body: nil, headers: {})
        uri = build_uri(path, params)
        req = verb.new(uri)
        configured_headers.merge(headers).each { |k, v| req[k.to_s] = v.to_s }
        if body
          req["Content-Type"] ||= "application/json"
          req.body = body.is_a?(String) ? body : JSON.generate(PlainData.call(body))
        end
        classify(perform(uri, req), verb, uri)
      end

      ENV_REFERENCE = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/.freeze

      # The class's default headers and handler.initialization's headers, with ${VAR} and
      # ${VAR:-default} read from the environment now, at each request (the configuration keeps the
      # reference, so a secret is never stored expanded and a rotated one is used at once). Headers
      # passed to a request are sent as given: they may carry task data.
      def configured_headers
        self.class.default_headers.merge(config.fetch("headers", {})).to_h do |name, value|
          [name, expand_env(value, "header #{name}")]
        end
      end

      def expand_env(value, what)
        value.to_s.gsub(ENV_REFERENCE) do
          ENV.fetch(Regexp.last_match(1)) do
            Regexp.last_match(2) or
              raise Errors::ConfigurationError, "#{self.class.name}: #{what} needs the environment variable " \
                                                "#{Regexp.last_match(1)} (or a default: ${#{Regexp.last_match(1)}:-value})"
          end
        end
      end

      # path relative to base_url; an empty path is base_url itself.
      def build_uri(path, params)
        base = base_url
        uri = if path.to_s.empty? then URI(base)
              else URI.join(base.end_with?("/") ? base : "#{base}/", path.to_s.sub(%r{\A/}, ""))
              end
        uri.query = URI.encode_www_form(PlainData.call(params)) unless params.nil? || params.empty?
        uri
      end

      def perform(uri, req)
        Net::HTTP.start(uri.host, uri.port, use_ssl: uri.scheme == "https",
                                            open_timeout: open_timeout, read_timeout: read_timeout) { |http| http.request(req) }
      rescue Net::OpenTimeout, Net::ReadTimeout => e
        raise Errors::TimeoutError.new("#{req.method} #{uri} timed out (#{e.class.name.split('::').last})",
                                       timeout_duration: read_timeout)
      rescue SystemCallError, SocketError, IOError, OpenSSL::SSL::SSLError => e
        raise Errors::NetworkError.new("#{req.method} #{uri} failed: #{e.message}")
      end

      # Seconds; handler.initialization's open_timeout / read_timeout, else its timeout (seed 002's
      # handler_config key), else 5 and 30.
      def open_timeout = config.fetch("open_timeout") { config.fetch("timeout", 5) }
      def read_timeout = config.fetch("read_timeout") { config.fetch("timeout", 30) }

      def classify(raw, verb, uri)
        response = Response.new(status: raw.code.to_i, headers: raw.each_header.to_h, body: raw.body)
        status = response.status
        return response if status < 400

        what = "#{verb::METHOD} #{uri} answered #{status}"
        context = { "status_code" => status, "body" => kept_body(response.body) }
        if status == 429 || status >= 500
          raise Errors::RetryableError.new(what, retry_after: retry_after(raw["Retry-After"]), context: context,
                                                 error_code: "HTTP_#{status}")
        end
        raise Errors::NotFoundError.new(what, resource_type: uri.path, context: context, error_code: "HTTP_404") if status == 404

        raise Errors::PermanentError.new(what, context: context, error_code: "HTTP_#{status}")
      end

      # The start of an error body as text the engine can store: any bytes scrubbed to valid UTF-8
      # first (a binary or mislabelled body must not turn a retryable failure into an unstorable
      # one), then cut to BODY_KEPT_BYTES on a character boundary.
      def kept_body(body)
        text = PlainData.text(body.to_s.byteslice(0, BODY_KEPT_BYTES * 4))
        text.byteslice(0, BODY_KEPT_BYTES).scrub("")
      end

      # Retry-After is either seconds or an HTTP date; the delay is at most the engine's maximum
      # (StepExecutor::MAX_RETRY_AFTER_SECONDS), however many digits the server sent.
      def retry_after(value)
        return nil if value.nil? || value.strip.empty?

        seconds = if value.strip.match?(/\A\d+(\.\d+)?\z/) then Float(value.strip)
                  else [Time.httpdate(value.strip) - Time.now, 0].max
                  end
        [seconds, StepExecutor::MAX_RETRY_AFTER_SECONDS.to_f].min
      rescue ArgumentError
        nil
      end
    end
  end
end
