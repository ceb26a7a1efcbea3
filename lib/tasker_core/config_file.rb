# frozen_string_literal: true

require "erb"
require "yaml"

module TaskerCore
  # Reads a tasker.yml: ERB first, then YAML, then the section of the current environment
  # (deep-merged over a `default` section when there is one), then `${VAR}` / `${VAR:-default}`
  # in every string. A string that is one whole `${...}` takes the type its value reads as in YAML
  # ("10" becomes 10, "true" becomes true), so numbers and flags can come from the environment.
  #
  #   default:
  #     pool_size: ${TASKER_POOL_SIZE:-10}
  #     template_paths: [config/tasker/tasks]
  #     worker: {concurrency: 5}
  #   production:
  #     pool_size: 25
  #
  # Keys: database_url, pool_size, connect_timeout_seconds, log_level, template_paths,
  # environment, and a `worker` section (the options of TaskerCore::Worker.new, plus
  # `in_process` for the worker started inside app server processes). Unknown keys raise
  # Errors::ConfigurationError naming the key and the file.
  module ConfigFile
    SETTINGS = %w[database_url pool_size connect_timeout_seconds log_level template_paths environment].freeze
    WORKER_EXTRA = %w[in_process].freeze
    VAR = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/.freeze

    module_function

    # The settings of environment in the file at path, as a Hash with String keys.
    def read(path, environment:, env: ENV)
      raise Errors::ConfigurationError, "config file #{path} does not exist" unless File.file?(path)

      text = ERB.new(File.read(path)).result
      data = YAML.safe_load(text, aliases: true) || {}
      raise Errors::ConfigurationError, "#{path}: the top level must be a mapping of environments" unless data.is_a?(Hash)

      section = select_environment(data, environment.to_s, path)
      settings = interpolate(section, env, path)
      check_keys!(settings, path)
      settings
    rescue Psych::Exception => e
      raise Errors::ConfigurationError, "#{path}: invalid YAML: #{e.message}"
    rescue SyntaxError, StandardError => e
      raise e if e.is_a?(Errors::Error)

      raise Errors::ConfigurationError, "#{path}: the ERB failed: #{e.class}: #{e.message}"
    end

    # Applies a file's settings to config (a TaskerCore::Configuration). Relative template paths
    # are taken from root.
    def apply(config, settings, root: Dir.pwd)
      settings.each do |key, value|
        case key
        when "template_paths"
          config.template_paths = Array(value).map { |p| File.expand_path(p.to_s, root.to_s) }
        when "worker"
          config.worker_options = config.worker_options.merge(value.transform_keys(&:to_sym))
        else
          config.public_send("#{key}=", value)
        end
      end
      config
    end

    def select_environment(data, environment, path)
      base = data["default"]
      section = data[environment]
      if section.nil? && base.nil?
        raise Errors::ConfigurationError,
              "#{path}: no section for environment '#{environment}' (and no 'default' section)"
      end
      [base, section].each do |part|
        next if part.nil? || part.is_a?(Hash)

        raise Errors::ConfigurationError, "#{path}: the section of '#{environment}' must be a mapping"
      end
      deep_merge(base || {}, section || {})
    end

    def deep_merge(left, right)
      left.merge(right) { |_, a, b| a.is_a?(Hash) && b.is_a?(Hash) ? deep_merge(a, b) : b }
    end

    def interpolate(value, env, path, where = [])
      case value
      when Hash then value.to_h { |k, v| [k.to_s, interpolate(v, env, path, where + [k.to_s])] }
      when Array then value.each_with_index.map { |v, i| interpolate(v, env, path, where + [i.to_s]) }
      when String then substitute(value, env, path, where)
      else value
      end
    end

    def substitute(string, env, path, where)
      whole = string.match(/\A#{VAR}\z/o)
      out = string.gsub(VAR) do
        name = Regexp.last_match(1)
        default = Regexp.last_match(2)
        value = env[name]
        value = default if value.nil? || (value.empty? && default)
        if value.nil?
          raise Errors::ConfigurationError,
                "#{path}: #{where.join('.')} needs the environment variable #{name} (or a default: ${#{name}:-value})"
        end
        value
      end
      whole ? YAML.safe_load(out.empty? ? "''" : out) : out
    rescue Psych::Exception
      out
    end

    def check_keys!(settings, path)
      unknown = settings.keys - SETTINGS - ["worker"]
      unless unknown.empty?
        raise Errors::ConfigurationError,
              "#{path}: unknown setting #{unknown.first} (known: #{(SETTINGS + ['worker']).join(', ')})"
      end
      worker = settings["worker"]
      return if worker.nil?
      raise Errors::ConfigurationError, "#{path}: worker must be a mapping" unless worker.is_a?(Hash)

      known = worker_keys
      bad = worker.keys - known
      return if bad.empty?

      raise Errors::ConfigurationError, "#{path}: unknown setting worker.#{bad.first} (known: #{known.join(', ')})"
    end

    # The keyword options of TaskerCore::Worker.new, plus in_process.
    def worker_keys
      Worker.instance_method(:initialize).parameters.filter_map { |type, name| name.to_s if %i[key keyreq].include?(type) } -
        %w[logger] + WORKER_EXTRA
    end
  end
end
