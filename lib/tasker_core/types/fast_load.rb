# frozen_string_literal: true

module TaskerCore
  module Types
    module ClientTypes
      # Builds a response struct from the engine's Hash with the checks of its attribute types
      # written in plain Ruby. Dry::Struct.new resolves every attribute through dry-types' layered
      # calls; for a TaskResponse with its steps that costs more client time than the rest of a
      # create_task. The struct is the same: Struct.load of the attributes new would have resolved
      # (the known keys, symbolized, in the Hash's order; defaults for absent keys that have one;
      # unknown keys left out), with the same values.
      #
      # FastLoad.for(struct) is nil unless every attribute's type is one of TYPES (compared as
      # dry-types compares types, by definition) or an Array of such a struct with a default; a
      # loader answers nil for any Hash its checks refuse, and the caller then builds the struct
      # with new, which raises exactly as before.
      module FastLoad
        # A check's answer for a value its type refuses.
        INVALID = Object.new.freeze

        # The checks, each answering its value (a copy, for an Array) or INVALID. Lambdas: calling
        # one costs less than calling a Method.
        STRING = ->(v) { v.is_a?(::String) ? v : INVALID }
        OPTIONAL_STRING = ->(v) { v.nil? || v.is_a?(::String) ? v : INVALID }
        UUID = ->(v) { v.is_a?(::String) && UUID_FORMAT.match?(v) ? v : INVALID }
        OPTIONAL_UUID = ->(v) { v.nil? || (v.is_a?(::String) && UUID_FORMAT.match?(v)) ? v : INVALID }
        INTEGER = ->(v) { v.is_a?(::Integer) ? v : INVALID }
        OPTIONAL_INTEGER = ->(v) { v.nil? || v.is_a?(::Integer) ? v : INVALID }
        COUNT = ->(v) { v.is_a?(::Integer) && v >= 0 ? v : INVALID }
        BOOL = ->(v) { v.equal?(true) || v.equal?(false) ? v : INVALID }
        HASH = ->(v) { v.is_a?(::Hash) ? v : INVALID }
        PERCENTAGE = ->(v) { v.is_a?(::Float) && v >= 0 && v <= 100 ? v : INVALID }
        OPTIONAL_STRINGS = lambda do |v|
          next v if v.nil?
          next INVALID unless v.is_a?(::Array) && v.all?(::String)

          v.dup
        end

        # A String among values.
        def self.enum_check(values)
          known = values.to_h { |v| [v, true] }.freeze
          ->(v) { v.is_a?(::String) && known.key?(v) ? v : INVALID }
        end

        # The attribute types a loader knows, with their checks.
        TYPES = {
          Types::Strict::String => STRING,
          Types::Strict::String.optional => OPTIONAL_STRING,
          Uuid => UUID,
          Uuid.optional => OPTIONAL_UUID,
          Types::Strict::Integer => INTEGER,
          Types::Strict::Integer.optional => OPTIONAL_INTEGER,
          Count => COUNT,
          Types::Strict::Bool => BOOL,
          Types::Strict::Hash => HASH,
          Types::Strict::Float.constrained(gteq: 0, lteq: 100) => PERCENTAGE,
          Types::Strict::Array.of(Types::Strict::String).optional => OPTIONAL_STRINGS,
          TaskStatus => enum_check(TASK_STATES),
          StepState => enum_check(STEP_STATES),
          Types::Strict::String.enum(*EXECUTION_STATUSES) => enum_check(EXECUTION_STATUSES),
          Types::Strict::String.enum(*RECOMMENDED_ACTIONS) => enum_check(RECOMMENDED_ACTIONS),
          Types::Strict::String.enum(*HEALTH_STATUSES) => enum_check(HEALTH_STATUSES)
        }.freeze

        # One struct's loader.
        class Loader
          def initialize(struct, fields)
            @struct = struct
            @keys = struct.schema.keys
            # By the String and the Symbol key: [attribute name, check].
            @fields = fields.flat_map { |name, check| [[name.to_s, [name, check]], [name, [name, check]]] }.to_h.freeze
          end

          def call(data)
            return nil unless data.is_a?(::Hash)

            out = {}
            data.each do |key, value|
              field = @fields[key]
              unless field
                # A key of another kind is for new to judge; an unknown name is left out, as new does.
                return nil unless key.is_a?(::String) || key.is_a?(::Symbol)

                next
              end
              checked = field[1].call(value)
              return nil if checked.equal?(INVALID)

              out[field[0]] = checked
            end
            return @struct.load(out) if out.size == @keys.size

            @keys.each do |key|
              next if out.key?(key.name)

              if key.default?
                out[key.name] = key.call_unsafe(::Dry::Types::Undefined)
              elsif key.required?
                return nil
              end
            end
            @struct.load(out)
          end
        end

        @loaders = {}
        @lock = Monitor.new # compiling a struct compiles the structs of its attributes

        class << self
          # The loader of struct (a BaseStruct subclass), or nil when it has an attribute type
          # outside TYPES.
          def for(struct)
            @loaders.fetch(struct) do
              @lock.synchronize { @loaders[struct] = compile(struct) unless @loaders.key?(struct) }
              @loaders[struct]
            end
          end

          private

          def compile(struct)
            return nil if struct.schema.strict?

            fields = struct.schema.keys.map do |key|
              check = check_for(key.type)
              return nil unless check

              [key.name, check]
            end
            Loader.new(struct, fields)
          end

          def check_for(type)
            return TYPES[type] if TYPES.key?(type)

            # steps: an Array of a struct this module loads, with a default.
            return nil unless type.is_a?(::Dry::Types::Default)

            array = type.type
            return nil unless array == Types::Strict::Array.of(array.type.member)

            member = array.type.member
            loader = member.is_a?(::Class) && member < ::Dry::Struct && self.for(member)
            return nil unless loader

            lambda do |value|
              return INVALID unless value.is_a?(::Array)

              value.map do |item|
                built = loader.call(item)
                return INVALID unless built

                built
              end
            end
          end
        end
      end
    end
  end
end
